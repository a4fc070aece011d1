"""The contract every channel must pass, as a pytest class an integrator subclasses.

Install it with ``pip install 'broadcaster[contract]'`` (pytest and pytest-asyncio). Its tests
and fixtures are marked for pytest-asyncio, so it runs in the default strict mode as in auto
mode; in strict mode mark your own async fixtures with ``@pytest_asyncio.fixture``. Usage, in
the integrator's own tests::

    import pytest
    import pytest_asyncio
    from broadcaster.testing.contract import ChannelContract, channel_context

    class TestMyChannel(ChannelContract):
        @pytest.fixture
        def channel(self, tmp_path):             # a channel instance, not started
            config = MyChannel.config_model.model_validate({"type": "mine", ...})
            return MyChannel("mine", config, channel_context(tmp_path))

        @pytest.fixture
        def reachable_target(self):              # a target the channel can deliver to
            return Target(id="t1", channel="mine", name="test", address="...")

        @pytest.fixture
        def delivery_sink(self):                 # where a delivery's effect can be seen
            return MySink(...)                   # async received(delivery) -> bool

        @pytest_asyncio.fixture
        async def permanent_failure(self, tmp_path):   # started channel, target that can never
            channel = MyChannel(...)                   # be reached (address missing or refused)
            await channel.start()
            yield channel, Target(id="t2", channel="mine", name="no address")
            await channel.stop()

        @pytest_asyncio.fixture
        async def transient_failure(self, tmp_path):   # started channel, target that cannot be
            ...                                        # reached now (device or server down)

A target's ``channel`` is the channel's instance name (the ``NAME`` of ``[channels.NAME]``),
not its type. Override the ``entry_point_name`` fixture to name the entry point that must load
the class (by default, any entry point of ``broadcaster.channels`` naming it), and the
``delivery_to`` method where the device decides on the alert's area (a node that plans its own
deliveries for it: the suite's alert then needs an area the node covers). A channel that
nothing about a target can make fail for good (a log file) declares it by returning None from
``permanent_failure``; the suite then checks that a target without an address is delivered.

The rules, each named in the failure it causes: ``metadata``; ``plan-within-candidates``;
``plan-each-target-once``; ``send-answers``; ``effect-observed`` (a send that reports success
left a trace in the sink); ``accepted-is-confirmed`` (a channel that confirms follows ACCEPTED
with a confirmation); ``permanent-is-permanent``;
``transient-is-retryable``; ``never-raises`` (``probe``, ``preview``, ``health``) and
``cancel-raises-only-channel-errors``; ``cancel-safe`` (a send cancelled by the dispatcher's
timeout lets the cancellation through and leaves the channel working); ``no-leaks`` (no task
or thread outlives ``stop``); ``secrets-masked``; ``entry-point``.
``content-is-previewed`` (the content ``send`` reports is what ``content`` gives and what
``preview`` shows, counted in the channel's ``target_unit``); ``preflight`` (a configuration
the channel starts with passes its ``preflight``, which writes nothing).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

try:
    import pytest
    import pytest_asyncio
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise ImportError(
        "broadcaster.testing.contract needs pytest and pytest-asyncio:"
        " pip install 'broadcaster[contract]'"
    ) from exc

from broadcaster.channel import (
    Channel,
    ChannelCapabilities,
    ChannelHealth,
    ChannelPreview,
    ConfirmationOutcome,
    OutgoingDelivery,
    ProbeResult,
    SendOutcome,
    SendResult,
)
from broadcaster.config import ChannelConfig
from broadcaster.delivery import Target
from broadcaster.errors import ChannelError, PermanentError, RetryableError
from broadcaster.testing.checks import (
    ContractViolation,
    DeliverySink,
    JsonLinesSink,
    Snapshot,
    check,
    entry_point_problem,
    leftovers,
    observed,
    secret_problems,
)
from broadcaster.testing.messages import channel_context, contract_delivery, contract_message

__all__ = [
    "ChannelContract",
    "ContractViolation",
    "DeliverySink",
    "JsonLinesSink",
    "channel_context",
    "contract_delivery",
    "contract_message",
]

CONFIRMATION_TIMEOUT = 10.0
"""Seconds the suite waits, by default, for a send to answer, a confirmation to arrive or the
sink to see a delivery (``ChannelContract.confirmation_timeout``)."""
CANCEL_POINTS = (0.0, 0.005, 0.05)
"""When, after a send starts, the suite cancels it (as the dispatcher's timeout would)."""


async def _confirmation_of(
    channel: Channel, delivery_id: int, within: float
) -> ConfirmationOutcome:
    try:
        async with asyncio.timeout(within):
            async for confirmation in channel.confirmations():
                final = confirmation.outcome is not ConfirmationOutcome.PROGRESS
                if confirmation.delivery_id == delivery_id and final:
                    return confirmation.outcome
    except TimeoutError:
        raise ContractViolation(
            "accepted-is-confirmed",
            f"send answered ACCEPTED and capabilities.confirms is True, but no confirmation of"
            f" delivery {delivery_id} came within {within:g} s",
        ) from None
    raise ContractViolation("accepted-is-confirmed", "the confirmation stream ended")


async def _send_checked(
    channel: Channel, delivery: OutgoingDelivery, sink: DeliverySink, within: float
) -> None:
    """Send ``delivery``; it must succeed, be seen by the sink and, if accepted, confirmed."""
    try:
        result = await asyncio.wait_for(channel.send(delivery), within)
    except TimeoutError:
        raise ContractViolation(
            "send-answers", f"send did not answer within {within:g} s"
        ) from None
    check(
        isinstance(result, SendResult),
        "send-answers",
        f"send returned {result!r}, not a SendResult (failures are exceptions)",
    )
    check(
        await observed(sink, delivery, within),
        "effect-observed",
        f"send answered {result.outcome.value} but the sink never saw delivery {delivery.id}",
    )
    if result.outcome is SendOutcome.ACCEPTED and channel.capabilities.confirms:
        outcome = await _confirmation_of(channel, delivery.id, within)
        check(
            outcome is ConfirmationOutcome.CONFIRMED,
            "accepted-is-confirmed",
            f"a delivery to the reachable target was confirmed as {outcome.value}",
        )


async def _expect_failure(
    channel: Channel, target: Target, wanted: type[ChannelError], rule: str, why: str
) -> None:
    """Sending to ``target`` must raise ``wanted``; ``why`` explains the other class's harm."""
    other = RetryableError if wanted is PermanentError else PermanentError
    try:
        result = await channel.send(contract_delivery(target, delivery_id=2))
    except wanted:
        return
    except other as exc:
        raise ContractViolation(rule, f"raised {other.__name__} ({exc}); {why}") from exc
    except Exception as exc:
        raise ContractViolation(
            rule, f"raised {type(exc).__name__} ({exc}), not a {wanted.__name__}"
        ) from exc
    raise ContractViolation(rule, f"send answered {result!r} for a target it cannot reach")


class ChannelContract:
    """Subclass with fixtures ``channel``, ``reachable_target``, ``delivery_sink``,
    ``permanent_failure`` and ``transient_failure`` (see the module docstring)."""

    confirmation_timeout: float = CONFIRMATION_TIMEOUT

    @pytest.fixture
    def entry_point_name(self) -> str | None:
        return None

    def delivery_to(self, target: Target, delivery_id: int = 1) -> OutgoingDelivery:
        """The delivery ``delivery_id`` to the reachable ``target`` that the suite sends:
        of :func:`contract_message`, whose one area has no geocode or shape. Override it
        where the device decides on the alert's area (a node that plans its own deliveries
        for it): ``contract_delivery(target, delivery_id, contract_message(areas=...))``."""
        return contract_delivery(target, delivery_id)

    @pytest_asyncio.fixture
    async def started(self, channel: Channel) -> AsyncIterator[Channel]:
        await channel.start()
        yield channel
        await channel.stop()

    def test_metadata(self, channel: Channel) -> None:
        check(
            isinstance(channel.capabilities, ChannelCapabilities),
            "metadata",
            "capabilities is not a ChannelCapabilities",
        )
        check(
            isinstance(channel.config_model, type)
            and issubclass(channel.config_model, ChannelConfig),
            "metadata",
            "config_model is not a subclass of broadcaster.config.ChannelConfig",
        )
        check(
            isinstance(channel.config, channel.config_model),
            "metadata",
            "the channel's config is not an instance of its config_model",
        )

    @pytest.mark.asyncio
    async def test_plan_keeps_to_its_candidates(
        self, started: Channel, reachable_target: Target
    ) -> None:
        other = replace(reachable_target, id=f"{reachable_target.id}-other")
        candidates = [reachable_target, other]
        planned = list(await started.plan(contract_message(), candidates))
        allowed = {t.id for t in candidates}
        check(
            all(p.target.id in allowed for p in planned),
            "plan-within-candidates",
            f"planned {[p.target.id for p in planned]}, not all among {sorted(allowed)}",
        )
        check(
            all(isinstance(p.part, int) and p.part >= 0 for p in planned),
            "plan-within-candidates",
            "a planned part is not a whole number >= 0",
        )
        keys = [(p.target.id, p.part) for p in planned]
        check(
            len(keys) == len(set(keys)),
            "plan-each-target-once",
            f"the same target and part planned more than once: {keys}",
        )

    @pytest.mark.asyncio
    async def test_send_has_an_observable_effect(
        self, started: Channel, reachable_target: Target, delivery_sink: DeliverySink
    ) -> None:
        await _send_checked(
            started, self.delivery_to(reachable_target), delivery_sink, self.confirmation_timeout
        )

    @pytest.mark.asyncio
    async def test_a_permanent_condition_is_permanent(
        self,
        permanent_failure: tuple[Channel, Target] | None,
        started: Channel,
        reachable_target: Target,
        delivery_sink: DeliverySink,
    ) -> None:
        if permanent_failure is None:
            # Declared: nothing about a target can make this channel fail for good. Then a
            # target without an address is delivered like any other.
            bare = replace(reachable_target, id=f"{reachable_target.id}-bare", address="")
            await _send_checked(
                started,
                contract_delivery(bare, delivery_id=2),
                delivery_sink,
                self.confirmation_timeout,
            )
            return
        channel, target = permanent_failure
        await _expect_failure(
            channel,
            target,
            PermanentError,
            "permanent-is-permanent",
            "a target that can never be reached is retried until the alert expires, which"
            " helps nobody: raise a PermanentError",
        )

    @pytest.mark.asyncio
    async def test_a_transient_condition_is_retryable(
        self, transient_failure: tuple[Channel, Target]
    ) -> None:
        channel, target = transient_failure
        await _expect_failure(
            channel,
            target,
            RetryableError,
            "transient-is-retryable",
            "the warning would never be sent again once the condition passes: raise a"
            " RetryableError",
        )

    @pytest.mark.asyncio
    async def test_probe_preview_and_health_never_raise(
        self,
        started: Channel,
        reachable_target: Target,
        transient_failure: tuple[Channel, Target],
    ) -> None:
        broken, unreachable = transient_failure
        for channel, target in ((started, reachable_target), (broken, unreachable)):
            answers: list[tuple[str, object, type]] = []
            try:
                answers.append(("probe", await channel.probe(target), ProbeResult))
                answers.append(
                    ("preview", await channel.preview(contract_message(), [target]), ChannelPreview)
                )
                answers.append(("health", await channel.health(), ChannelHealth))
            except Exception as exc:
                method = ("probe", "preview", "health")[len(answers)]
                raise ContractViolation(
                    "never-raises",
                    f"{method}() raised {type(exc).__name__} ({exc}); answer ok=False (probe,"
                    " health) or with notes (preview) instead",
                ) from exc
            for method, answer, kind in answers:
                check(
                    isinstance(answer, kind),
                    "never-raises",
                    f"{method}() returned {answer!r}, not a {kind.__name__}",
                )

    @pytest.mark.asyncio
    async def test_cancel_raises_only_channel_errors(
        self, started: Channel, reachable_target: Target
    ) -> None:
        sent = self.delivery_to(reachable_target, delivery_id=4)
        await started.send(sent)
        for delivery in (sent, self.delivery_to(reachable_target, delivery_id=5)):
            try:
                await started.cancel(delivery)
            except ChannelError:
                continue
            except Exception as exc:
                raise ContractViolation(
                    "cancel-raises-only-channel-errors",
                    f"cancel() raised {type(exc).__name__} ({exc})",
                ) from exc

    @pytest.mark.asyncio
    async def test_what_is_sent_is_what_the_preview_shows(
        self, started: Channel, reachable_target: Target
    ) -> None:
        delivery = self.delivery_to(reachable_target, delivery_id=4)
        result = await started.send(delivery)
        try:
            preview = await started.preview(delivery.message, [reachable_target])
        except Exception as exc:
            raise ContractViolation(
                "never-raises", f"preview() raised {type(exc).__name__} ({exc})"
            ) from exc
        check(
            preview.unit == started.target_unit and preview.targets >= 1,
            "content-is-previewed",
            f"preview counted {preview.targets} {preview.unit}, not the target in"
            f" {started.target_unit}",
        )
        if result.content is not None:
            content = await started.content(delivery.message, reachable_target, delivery.part)
            check(
                result.content == content,
                "content-is-previewed",
                f"send reported {result.content!r} but content() gives {content!r}",
            )
            check(
                result.content in preview.contents,
                "content-is-previewed",
                f"send reported {result.content!r}, which the preview does not show",
            )

    @pytest.mark.asyncio
    async def test_send_is_cancel_safe(
        self, started: Channel, reachable_target: Target, delivery_sink: DeliverySink
    ) -> None:
        for number, delay in enumerate(CANCEL_POINTS, start=10):
            task = asyncio.ensure_future(
                started.send(self.delivery_to(reachable_target, delivery_id=number))
            )
            await asyncio.sleep(delay)
            if not task.cancel():
                continue  # it had finished already
            try:
                result = await task
            except asyncio.CancelledError:
                continue
            except Exception as exc:
                raise ContractViolation(
                    "cancel-safe", f"a cancelled send raised {type(exc).__name__} ({exc})"
                ) from exc
            raise ContractViolation(
                "cancel-safe",
                f"a send cancelled after {delay:g} s swallowed the cancellation and answered"
                f" {result!r}; let asyncio.CancelledError through",
            )
        await _send_checked(
            started,
            self.delivery_to(reachable_target, 20),
            delivery_sink,
            self.confirmation_timeout,
        )

    @pytest.mark.asyncio
    async def test_no_task_or_thread_outlives_stop(
        self, channel: Channel, reachable_target: Target, delivery_sink: DeliverySink
    ) -> None:
        before = Snapshot.take()
        await channel.start()
        try:
            await _send_checked(
                channel,
                self.delivery_to(reachable_target, 30),
                delivery_sink,
                self.confirmation_timeout,
            )
        finally:
            await channel.stop()
        left = await leftovers(before)
        check(not left, "no-leaks", f"still running after stop(): {', '.join(left)}")

    def test_config_dump_masks_every_secret(self, channel: Channel) -> None:
        problems = secret_problems(channel.config)
        check(not problems, "secrets-masked", "; ".join(problems))

    def test_entry_point_resolves(self, channel: Channel, entry_point_name: str | None) -> None:
        problem = entry_point_problem(channel, entry_point_name)
        check(problem is None, "entry-point", problem or "")

    @pytest.mark.asyncio
    async def test_a_working_configuration_passes_its_preflight(self, channel: Channel) -> None:
        """Before ``start`` (the check writes nothing) and after it (what ``start`` wrote, such
        as a generated key, reads back)."""
        data_dir = channel.context.data_dir
        before = _files(data_dir)
        found = channel.preflight(channel.name, channel.config, data_dir)
        check(found == [], "preflight", f"a working configuration fails preflight: {found}")
        check(_files(data_dir) == before, "preflight", "preflight changed the data directory")
        await channel.start()
        try:
            found = channel.preflight(channel.name, channel.config, data_dir)
            check(found == [], "preflight", f"after start, preflight finds: {found}")
        finally:
            await channel.stop()


def _files(folder: Path) -> dict[str, int]:
    """Every entry under ``folder`` with its modification time (ns)."""
    return {str(path): path.stat().st_mtime_ns for path in folder.rglob("*")}
