"""The signature policy of intake, and the signer for alerts this server writes.

Every incoming document that carries an enveloped XML signature is verified
(:func:`broadcaster.cap.signature.verify_signature`); the result is kept in the alert's event
log and reported to the submitter. A tampered signature (content or signature altered)
rejects the alert unless ``[cap] reject_bad_signatures = false``; a malformed one, which
cannot be checked at all, is reported and the alert treated as unsigned. With
``require_trusted_signature`` an unsigned alert, a malformed signature or one by a key
outside ``trusted_certificates`` is rejected too. Alerts the server
itself writes (Cancels from the API, the console's drafts, scheduled tests) are signed when
``signing_key`` and ``signing_certificate`` are configured.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from broadcaster.cap import Problem
from broadcaster.cap.signature import AlertSigner, SignatureReport, verify_signature
from broadcaster.config import CapConfig
from broadcaster.errors import CapError, ConfigError

_PATH = "/alert/Signature"


@dataclass(frozen=True, slots=True)
class SignatureVerdict:
    report: SignatureReport
    problems: list[Problem]

    @property
    def summary(self) -> str:
        r = self.report
        return f"signature {r.status}; certificate {r.certificate}; {r.detail}".strip("; ")


class SignaturePolicy:
    def __init__(self, config: CapConfig) -> None:
        self.config = config
        self.trusted: list[bytes] = []
        for path in config.trusted_certificates:
            try:
                self.trusted.append(path.read_bytes())
            except OSError as exc:
                raise ConfigError(
                    f"cap.trusted_certificates: cannot read {path}: {exc.strerror}"
                ) from None
        self.signer = self._signer()

    def _signer(self) -> AlertSigner | None:
        key, cert = self.config.signing_key, self.config.signing_certificate
        if key is None or cert is None:
            return None
        try:
            return AlertSigner.from_pem(key.read_bytes(), cert.read_bytes())
        except OSError as exc:
            raise ConfigError(
                f"cap.signing_key: cannot read {exc.filename}: {exc.strerror}"
            ) from None
        except CapError as exc:
            raise ConfigError(f"cap.signing_key: {exc}") from None

    def check(self, raw: bytes, now: float) -> SignatureVerdict:
        """Verify ``raw``'s signature; raises CapError if the policy refuses the alert."""
        at = datetime.fromtimestamp(now, UTC)
        report = verify_signature(raw, trusted_certs=self.trusted, at=at)
        if report.status == "tampered":
            problem = Problem(_PATH, "signature-tampered", report.detail)
            if self.config.reject_bad_signatures:
                raise CapError("the alert's signature does not match its content", [problem])
            return SignatureVerdict(report, [_warning(problem)])
        if report.status == "malformed":
            # A signature that cannot be checked at all (real feeds send such ones, e.g. an Id
            # that is not an XML name, or no certificate) says nothing either way: the alert
            # is taken as unsigned, with the reason kept, unless trust is required.
            problem = Problem(_PATH, "signature-malformed", f"cannot verify: {report.detail}")
            if self.config.require_trusted_signature:
                raise CapError("the alert's signature cannot be verified", [problem])
            return SignatureVerdict(report, [_warning(problem)])
        if report.status == "unsigned":
            if self.config.require_trusted_signature:
                problem = Problem(_PATH, "signature-required", "the alert must be signed")
                raise CapError("unsigned alerts are not accepted", [problem])
            return SignatureVerdict(report, [])
        if report.certificate != "trusted":
            problem = Problem(
                _PATH,
                f"certificate-{report.certificate}",
                f"signature is valid but the certificate is {report.certificate}: {report.detail}",
            )
            if self.config.require_trusted_signature:
                raise CapError("the alert is not signed by a trusted key", [problem])
            return SignatureVerdict(report, [_warning(problem)])
        return SignatureVerdict(report, [])


def _warning(problem: Problem) -> Problem:
    return Problem(problem.path, problem.rule, problem.message, severity="warning")
