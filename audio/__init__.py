"""Audio rendering for warnings: speech engines, attention signals, SAME headers, assembly.

Imports nothing of the project. The public entry points are re-exported here; see README.md.
"""

from audio.assembly import (
    FM_PROFILE,
    LOUDSPEAKER_PROFILE,
    PROFILES,
    TELEPHONE_PROFILE,
    ChannelProfile,
    SegmentSpan,
)
from audio.chain import EngineAttempt
from audio.errors import AudioError
from audio.export import ExportFormat
from audio.loudness import LoudnessTarget
from audio.render import (
    Render,
    Renderer,
    RendererConfig,
    RenderRequest,
    UnspokenLanguage,
    render_warning,
)
from audio.signals import AttentionConfig, AttentionKind
from audio.speechtext import Level, SpeechText, Status

__all__ = [
    "FM_PROFILE",
    "LOUDSPEAKER_PROFILE",
    "PROFILES",
    "TELEPHONE_PROFILE",
    "AttentionConfig",
    "AttentionKind",
    "AudioError",
    "ChannelProfile",
    "EngineAttempt",
    "ExportFormat",
    "Level",
    "LoudnessTarget",
    "Render",
    "RenderRequest",
    "Renderer",
    "RendererConfig",
    "SegmentSpan",
    "SpeechText",
    "Status",
    "UnspokenLanguage",
    "render_warning",
]
