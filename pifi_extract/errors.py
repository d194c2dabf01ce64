"""The one error hierarchy of pifi.

Every error a user can cause or fix is a :class:`PifiError`. Each subclass also
subclasses the matching built-in, so ``except FileNotFoundError`` keeps working
for callers who do not know pifi. The message is one line that says what went
wrong; ``hint`` says how to fix it. The CLI prints ``error: <message> (<hint>)``
and exits with code 2.
"""

from __future__ import annotations


class PifiError(Exception):
    """Base of every error pifi raises on purpose."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def one_line(self) -> str:
        """The message and the fix, on one line, as the CLI prints them."""
        text = self.message if not self.hint else f"{self.message} — {self.hint}"
        return " ".join(text.split())

    def __str__(self) -> str:
        return self.one_line()


class SourceNotFoundError(PifiError, FileNotFoundError):
    """A repo, revision, file or local folder that does not exist."""


class AccessDeniedError(PifiError, PermissionError):
    """A gated or private repo without the right token, or a folder we cannot write."""


class OfflineError(PifiError, ConnectionError):
    """Offline mode is on and nothing local answers the request."""


class NetworkError(PifiError, ConnectionError):
    """The network failed past the retry budget, or a file changed while we read it."""


class UnsupportedModelError(PifiError, ValueError):
    """An architecture pifi does not know, one that needs remote code, or pickle-only weights."""


class StorageError(PifiError, OSError):
    """Writing failed: folder not writable, disk full, or another I/O error on our side."""


class LayerIndexError(PifiError, IndexError):
    """A layer index outside the model's range."""


class CorruptFileError(PifiError, ValueError):
    """A safetensors/GGUF file or index whose structure is invalid."""


class ArtifactError(PifiError, ValueError):
    """A file that is not a pifi artifact, or one whose data fails its checksum."""


class CacheError(PifiError, LookupError):
    """An unknown or ambiguous cache reference."""


class ConfigError(PifiError, ValueError):
    """Invalid options or input data (training files, task names, devices...)."""


__all__ = [
    "PifiError",
    "SourceNotFoundError",
    "AccessDeniedError",
    "OfflineError",
    "NetworkError",
    "UnsupportedModelError",
    "StorageError",
    "LayerIndexError",
    "CorruptFileError",
    "ArtifactError",
    "CacheError",
    "ConfigError",
]
