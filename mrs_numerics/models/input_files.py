"""Files from users, parsed and never trusted: torch files and option files, one line per problem.

Every place that reads a file a user gives (an IR-SDE/DA-CLIP checkpoint, a DA-CLIP context, a
training checkpoint to resume, an option YAML or JSON) reads it here, so that one policy holds
for all of them:

- **No code runs.** Torch files are read with ``torch.load(..., weights_only=True)``; a file
  that needs more (a whole pickled ``nn.Module``, a pickle that calls a function) is refused,
  and what it would have needed is found by reading its pickle opcodes with ``pickletools``,
  which executes nothing. YAML is read with ``yaml.safe_load``'s constructors.
- **One line per problem, naming the file, what it is and what was expected.** A missing file,
  a folder, an empty file, a text file, an image, a safetensors file, a zip that is not a torch
  file, a damaged file, a pickled module, a pickle with code, a tensor where a mapping was
  expected (and the reverse), YAML or JSON that does not parse, a key given twice: each is an
  ``InputError`` of ``mrs_numerics._errors`` (a ``ValueError``; a missing file is also a
  ``FileNotFoundError``) with one line, never torch's or PyYAML's traceback.
- **The bytes are hashed once while loading**: a
  [`TorchFile`][mrs_numerics.models.input_files.TorchFile] carries the SHA-256 of exactly the
  bytes that were parsed (a checkpoint's identity).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import pickletools
import re
import warnings
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml

from mrs_numerics._errors import InputError


class MissingInputError(InputError, FileNotFoundError):
    """An input file that does not exist."""


@dataclass(frozen=True)
class Expected:
    """What a torch file must hold.

    Attributes:
        kind: The Python type the loaded value must be (``Mapping`` or ``torch.Tensor``).
        description: How messages say what was expected, e.g. ``"a state dict (parameter
            names → tensors)"``.
        how: How such a file is made, e.g. ``"torch.save(model.state_dict(), PATH)"``.
    """

    kind: type
    description: str
    how: str

    def sentence(self) -> str:
        """``expected a state dict (…), saved with torch.save(…)``."""
        return f"expected {self.description}, saved with {self.how}"


STATE_DICT = Expected(
    Mapping,
    "a state dict (parameter names → tensors, possibly under 'state_dict' or 'params')",
    "torch.save(model.state_dict(), PATH)",
)
"""A network's weights."""

TENSOR = Expected(torch.Tensor, "one tensor", "torch.save(tensor, PATH)")
"""One tensor (a DA-CLIP context)."""

MAPPING = Expected(Mapping, "a mapping", "torch.save({...}, PATH)")
"""Any mapping (a training checkpoint)."""


@dataclass(frozen=True)
class TorchFile:
    """A torch file's content and the identity of its bytes.

    Attributes:
        path: The file.
        content: What ``torch.load`` returned (of the expected kind).
        sha256: The hex SHA-256 digest of the file's bytes (those that were parsed).
    """

    path: Path
    content: Any
    sha256: str


TORCH_ZIP_RECORD = "data.pkl"
"""The pickle every ``torch.save`` zip archive holds (as ``<archive name>/data.pkl``)."""

MODULE_STATE = frozenset({"_parameters", "_modules"})
"""Attribute names every pickled ``nn.Module`` carries: their presence marks a whole network."""

SAFE_PREFIXES = ("torch", "collections", "builtins", "__builtin__", "_codecs")
"""Modules of the globals a weights-only load allows (tensors, storages, ordered dicts)."""

_MAGIC = (
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"\x1f\x8b", "a gzip-compressed file (decompress it first)"),
    (b"\x89HDF", "an HDF5 file (Keras/h5py weights)"),
    (b"\x93NUMPY", "a NumPy .npy file"),
)
_SHOWN = 3
_EXCERPT = 40


def input_file(path: str | os.PathLike, what: str) -> Path:
    """``path`` as a ``Path``, refused unless it is an existing, non-empty file.

    Args:
        path: The file.
        what: How messages name it (e.g. ``"checkpoint"``, ``"option file"``).

    Raises:
        MissingInputError: If nothing is at ``path``.
        InputError: If ``path`` is a folder or an empty file.
    """
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{what} {path} is a folder, not a file")
    if not path.exists():
        raise MissingInputError(f"{what} {path} does not exist")
    if path.stat().st_size == 0:
        raise InputError(f"{what} {path} is empty (0 bytes)")
    return path


def load_torch_file(
    path: str | os.PathLike, expected: Expected = STATE_DICT, what: str = "checkpoint"
) -> TorchFile:
    """The content of a ``torch.save`` file, read without running code, and its SHA-256.

    The bytes are read once, hashed, and parsed with ``torch.load(..., map_location="cpu",
    weights_only=True)``. Before parsing, the first bytes tell a torch file (a zip archive
    holding ``data.pkl``, or a legacy pickle) from a text file, an image, a safetensors file or
    anything else; a parse that fails is explained from the file's pickle opcodes.

    Args:
        path: The file.
        expected: What it must hold ([`STATE_DICT`][mrs_numerics.models.input_files.STATE_DICT],
            [`TENSOR`][mrs_numerics.models.input_files.TENSOR] or
            [`MAPPING`][mrs_numerics.models.input_files.MAPPING]).
        what: How messages name it (e.g. ``"checkpoint"``, ``"the text context"``).

    Returns:
        The [`TorchFile`][mrs_numerics.models.input_files.TorchFile].

    Raises:
        MissingInputError: If the file does not exist.
        InputError: For anything that is not a torch file holding ``expected`` (one line:
            what the file is and what was expected).
    """
    path = input_file(path, what)
    data = path.read_bytes()
    named = f"{what} {path}"
    kind = _foreign_kind(data)
    if kind:
        raise InputError(f"{named} is {kind}, not a torch file; {expected.sentence()}")
    if data.startswith(b"PK"):
        _check_torch_zip(data, named, expected)
    elif not data.startswith(b"\x80"):
        raise InputError(
            f"{named} is not a torch file (it begins with the bytes {data[:4].hex(' ')}: "
            f"neither a zip archive nor a pickle); {expected.sentence()}"
        )
    content = _parse(data, named, expected)
    if not isinstance(content, expected.kind):
        raise InputError(f"{named} holds {describe(content)}; {expected.sentence()}")
    return TorchFile(path, content, hashlib.sha256(data).hexdigest())


def describe(value: Any) -> str:
    """A few words on what a loaded value is: ``one tensor of shape (3,) (torch.float32)``, ``a
    dict with the keys a, b``, ``a list of 3 items``."""
    if isinstance(value, torch.Tensor):
        return f"one tensor of shape {tuple(value.shape)} ({value.dtype})"
    if isinstance(value, Mapping):
        keys = [str(key) for key in value]
        more = f", … ({len(keys)} in all)" if len(keys) > _SHOWN else ""
        shown = ", ".join(keys[:_SHOWN]) + more
        return f"a {type(value).__name__} with the keys {shown}" if keys else "an empty mapping"
    if isinstance(value, list | tuple):
        return f"a {type(value).__name__} of {len(value)} items"
    return f"a {type(value).__name__} ({_excerpt(repr(value))})"


def read_mapping_file(path: str | os.PathLike, what: str = "option file") -> Mapping[str, Any]:
    """The mapping at the top of a YAML or JSON file (JSON if its suffix is ``.json``).

    YAML is read with PyYAML's safe constructors (plain data only). A key given twice in one
    mapping is refused (both formats would otherwise keep the last silently).

    Args:
        path: The file.
        what: How messages name it.

    Raises:
        MissingInputError: If the file does not exist.
        InputError: If it is not UTF-8 text, does not parse (the message gives the line and
            column), has a key twice, or does not hold a mapping at its top level.
    """
    path = input_file(path, what)
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        kind = _foreign_kind(data) or (
            "a torch file" if data.startswith((b"PK", b"\x80")) else "a binary file"
        )
        raise InputError(f"{what} {path} is {kind}, not a YAML or JSON text file") from None
    parse = _json if path.suffix.lower() == ".json" else _yaml
    content = parse(text, path, what)
    if not isinstance(content, Mapping):
        found = "nothing (the file holds no data)" if content is None else describe(content)
        raise InputError(f"{what} {path} must hold a mapping of sections at its top, got {found}")
    return content


def _foreign_kind(data: bytes) -> str:
    """What a file that is surely not a torch file is ("" if it may be one)."""
    for magic, kind in _MAGIC:
        if data.startswith(magic):
            return kind
    if _is_safetensors(data):
        return (
            "a safetensors file (convert it once with torch.save(safetensors.torch.load_file("
            "PATH), 'weights.pth'))"
        )
    if data.startswith((b"PK", b"\x80")):
        return ""
    try:
        text = data[:512].decode("utf-8")
    except UnicodeDecodeError:
        return ""
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    option_file = any(word in text for word in ("network_G", "which_model_G", "sde:"))
    hint = " (it looks like an option file)" if option_file else ""
    return f"a text file{hint} beginning {_excerpt(first)!r}"


def _is_safetensors(data: bytes) -> bool:
    """A safetensors file: 8-byte little-endian header length, then a JSON header."""
    if len(data) < 10:
        return False
    size = int.from_bytes(data[:8], "little")
    return 0 < size <= len(data) - 8 and data[8:9] == b"{"


def _check_torch_zip(data: bytes, named: str, expected: Expected) -> None:
    """Refuse a zip archive that is not a ``torch.save`` archive (no ``*/data.pkl``)."""
    try:
        names = zipfile.ZipFile(io.BytesIO(data)).namelist()
    except zipfile.BadZipFile:
        raise InputError(
            f"{named} is a damaged or truncated zip archive (a torch file cut short?); "
            f"{expected.sentence()}"
        ) from None
    if not any(name.endswith("/" + TORCH_ZIP_RECORD) for name in names):
        shown = ", ".join(names[:_SHOWN]) or "nothing"
        raise InputError(
            f"{named} is a zip archive but not a torch file (it holds {shown}, no "
            f"{TORCH_ZIP_RECORD}); {expected.sentence()}"
        )


def _parse(data: bytes, named: str, expected: Expected) -> Any:
    """``torch.load`` of the bytes, weights only; any failure becomes one line."""
    try:
        with warnings.catch_warnings():
            # torch warns that a pickle protocol is not its default: the refusal below says more
            warnings.filterwarnings("ignore", module=r"torch\._weights_only_unpickler")
            return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise InputError(f"{named} {_refused(data, error, expected)}") from None
    except Exception as error:  # a malformed file fails inside torch in many ways
        reason = _first_sentence(str(error)) or type(error).__name__
        raise InputError(
            f"{named} is a damaged or truncated torch file ({reason}); {expected.sentence()}"
        ) from None


def _refused(data: bytes, error: Exception, expected: Expected) -> str:
    """Why a weights-only load refused the file, from its pickle opcodes (nothing executed)."""
    try:
        globals_, strings = _pickle_names(data)
    except Exception:  # the explanation is best effort: a file torch refused may be malformed
        globals_, strings = [], set()
    foreign = [name for name in globals_ if not name.startswith(SAFE_PREFIXES)]
    if strings >= MODULE_STATE:
        modules = [name for name in globals_ if name.startswith("torch.nn.")]
        network = next(iter(foreign + modules), "an nn.Module")
        return (
            f"holds a whole pickled network ({network}), not a state dict: reading it would run "
            "code from the file, which this package never does. Where the network's code is at "
            "hand, load it there and save its weights alone with "
            "torch.save(model.state_dict(), PATH)"
        )
    match = re.search(r"GLOBAL ([\w.]+) was not an allowed global", str(error))
    needed = list(dict.fromkeys(([match.group(1)] if match else []) + foreign))
    if needed:
        return (
            f"is a pickle that needs {', '.join(needed[:_SHOWN])} to load: a weights-only load "
            "refuses it (such a pickle could run code) and nothing from it was run; "
            + expected.sentence()
        )
    reason = _first_sentence(str(error))
    return f"is a pickle that a weights-only load refuses ({reason}); {expected.sentence()}"


def _pickle_names(data: bytes) -> tuple[list[str], set[str]]:
    """(the globals a pickle imports, in order; the strings it holds) of a torch file's pickle,
    read with ``pickletools`` (a disassembler: it executes nothing)."""
    if data.startswith(b"PK"):
        archive = zipfile.ZipFile(io.BytesIO(data))
        name = next(n for n in archive.namelist() if n.endswith("/" + TORCH_ZIP_RECORD))
        data = archive.read(name)
    globals_: list[str] = []
    strings: set[str] = set()
    recent: list[str] = []
    memo: dict[Any, str | None] = {}
    stream = io.BytesIO(data)
    while stream.tell() < len(data):  # a legacy torch file is several pickles in a row
        on_top: str | None = None  # the string the last stack-changing opcode pushed, if any
        try:
            for opcode, argument, _ in pickletools.genops(stream):
                name = opcode.name
                if name == "MEMOIZE":
                    memo[len(memo)] = on_top
                    continue
                if name.endswith("PUT"):
                    memo[argument] = on_top
                    continue
                on_top = None
                if name == "GLOBAL":
                    globals_.append(str(argument).replace(" ", "."))
                elif name == "STACK_GLOBAL" and len(recent) >= 2:
                    globals_.append(f"{recent[-2]}.{recent[-1]}")
                elif isinstance(argument, str) and "UNICODE" in name:
                    on_top = argument
                elif name.endswith("GET"):
                    on_top = memo.get(argument)
                if on_top is not None:
                    strings.add(on_top)
                    recent.append(on_top)
        except (ValueError, EOFError):
            break  # the raw storage bytes after the pickles, or a truncated pickle
    return globals_, strings


def _json(text: str, path: Path, what: str) -> Any:
    try:
        return json.loads(text, object_pairs_hook=_unique_pairs(path, what))
    except json.JSONDecodeError as error:
        raise InputError(
            f"{what} {path} is not valid JSON (line {error.lineno}, column {error.colno}: "
            f"{error.msg})"
        ) from None


def _unique_pairs(path: Path, what: str):
    """A ``json`` ``object_pairs_hook`` that builds a dict and refuses a key given twice."""

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        mapping: dict[str, Any] = {}
        for key, value in items:
            if key in mapping:
                raise InputError(f"{what} {path} gives the key {key!r} twice in one object")
            mapping[key] = value
        return mapping

    return pairs


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a key given twice in one mapping."""

    def construct_mapping(self, node, deep=False):
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                repeated = key in seen
            except TypeError:  # an unhashable key: PyYAML refuses it below
                break
            if repeated:
                mark = key_node.start_mark
                raise yaml.constructor.ConstructorError(
                    None, None, f"the key {key!r} is given twice in one mapping", mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _yaml(text: str, path: Path, what: str) -> Any:
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader: plain data only
    except yaml.YAMLError as error:
        raise InputError(f"{what} {path} is not valid YAML ({_yaml_reason(error)})") from None


def _yaml_reason(error: yaml.YAMLError) -> str:
    """PyYAML's multi-line message as one clause: ``line 3, column 5: <problem>``."""
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or str(error).splitlines()[0]
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    return f"{where}{problem}"


def _first_sentence(text: str) -> str:
    """The first line of a message, without torch's terminal colour codes, cut to a clause."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", text).strip()
    line = text.splitlines()[0] if text else ""
    return line.split(". ")[0].rstrip(".")[:160]


def _excerpt(text: str) -> str:
    return text if len(text) <= _EXCERPT else text[: _EXCERPT - 1] + "…"
