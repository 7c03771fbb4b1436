"""What every local-data loader shares: reading the official files, choosing samples, fitting prompts.

* **Reading.** :func:`read_records` reads a ``.jsonl`` file (one JSON object per line) or a ``.json``
  file (an array of objects, or one object) and keeps, for each record, the line it starts on, so
  every error can name the file, the line and the field (:func:`field`). Files are parsed once per
  process and modification time (:func:`read_records` is cached).
* **Choosing.** :func:`select` turns ``(limit, seed)`` into the items one call of ``cases`` yields:
  every item in file order with ``limit=0``, else the ``seed``-th window of ``limit`` items.
* **Fitting.** :func:`fit_prompt` applies LongBench's rule to a prompt longer than the budget: tokenize
  it, keep the first and the last half of the budget, drop the middle (``pred.py``:
  ``tokenizer.decode(ids[:half]) + tokenizer.decode(ids[-half:])``), then check the result fits.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import attrs

from longctx.errors import InputError
from longctx.evaluate import Case, count_prompt_tokens, render_prompt
from longctx.params import at_least
from longctx.textsplit import TokenMap

#: The folder of the fixture files shipped with the plugin (tiny samples in each official format).
FIXTURES = Path(__file__).resolve().parent / "fixtures"


# -- records ---------------------------------------------------------------------------------------


class Record(NamedTuple):
    """One record of a data file: its JSON object, the file and the line it starts on (1-based)."""

    data: Mapping[str, Any]
    path: Path
    line: int

    @property
    def where(self) -> str:
        return f"{self.path}: line {self.line}"


def _json_values(text: str, path: Path) -> list[tuple[Any, int]]:
    """The top-level values of a ``.json`` file with their line numbers: the elements of an array, or the
    one object. ``json.loads`` would give the values but not where each starts."""
    dec = json.JSONDecoder()
    i = len(text) - len(text.lstrip())
    if i >= len(text):
        raise InputError(f"{path}: the file is empty")
    try:
        if text[i] != "[":
            value, _ = dec.raw_decode(text, i)
            return [(value, text.count("\n", 0, i) + 1)]
        out: list[tuple[Any, int]] = []
        i += 1
        while True:
            while i < len(text) and text[i] in " \t\r\n":
                i += 1
            if i < len(text) and text[i] == "]":
                return out
            value, end = dec.raw_decode(text, i)
            out.append((value, text.count("\n", 0, i) + 1))
            i = end
            while i < len(text) and text[i] in " \t\r\n":
                i += 1
            if i < len(text) and text[i] == ",":
                i += 1
            elif i < len(text) and text[i] == "]":
                return out
            else:
                raise json.JSONDecodeError("expected ',' or ']'", text, i)
    except json.JSONDecodeError as e:
        raise InputError(f"{path}: line {e.lineno}: not valid JSON ({e.msg})") from None


@functools.lru_cache(maxsize=32)
def _read_cached(path: str, mtime_ns: int, size: int) -> tuple[Record, ...]:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise InputError(f"{p}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    if p.suffix == ".jsonl":
        values = []
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                values.append((json.loads(line), n))
            except json.JSONDecodeError as e:
                raise InputError(f"{p}: line {n}: not valid JSON ({e.msg}, column {e.colno})") from None
    else:
        values = _json_values(text, p)
    out = []
    for value, n in values:
        if not isinstance(value, dict):
            raise InputError(f"{p}: line {n}: expected a JSON object, got {type(value).__name__}")
        out.append(Record(value, p, n))
    if not out:
        raise InputError(f"{p}: the file has no records")
    return tuple(out)


def read_records(path: str | Path) -> tuple[Record, ...]:
    """The records of a ``.jsonl`` or ``.json`` file, each with its line number.

    :raises InputError: naming the file (and line) when it is missing, unreadable, not JSON, or holds
        something other than JSON objects.
    """
    p = Path(path)
    if p.suffix not in (".jsonl", ".json"):
        raise InputError(f"{p}: expected a .jsonl or .json file")
    try:
        st = p.stat()
    except OSError as e:
        raise InputError(f"{p}: cannot read the file ({e.strerror})") from None
    if not p.is_file():
        raise InputError(f"{p}: not a file")
    try:
        return _read_cached(str(p.resolve()), st.st_mtime_ns, st.st_size)
    except OSError as e:
        raise InputError(f"{p}: cannot read the file ({e.strerror})") from None


_MISSING = object()


def field(record: Record, name: str, kind: type | tuple[type, ...] | None = None, *, default: Any = _MISSING) -> Any:
    """``record.data[name]``, checked to be of ``kind``; a missing field is an :class:`InputError` naming
    the file, the line and the field (unless a ``default`` is given)."""
    if name not in record.data:
        if default is not _MISSING:
            return default
        raise InputError(f"{record.where}: missing field {name!r}")
    value = record.data[name]
    if kind is not None and not isinstance(value, kind):
        names = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
        raise InputError(f"{record.where}: field {name!r} must be {names}, got {type(value).__name__}")
    return value


def string_list(record: Record, name: str) -> list[str]:
    """A field that must be a list of strings (LongBench's ``answers``)."""
    value = field(record, name, list)
    if not all(isinstance(v, str) for v in value):
        raise InputError(f"{record.where}: field {name!r} must be a list of strings")
    return value


def require_path(task: str, path: str) -> Path:
    """The ``path=`` parameter as a :class:`Path`; an error when it was not given or does not exist."""
    if not path:
        raise InputError(
            f"{task}: the path= parameter is required (a data file or the benchmark's folder), e.g. "
            f"--task {task}:path=data/… — see docs/techniques/local-data.md"
        )
    p = Path(path).expanduser()
    if not p.exists():
        raise InputError(f"{task}: path {str(p)!r} does not exist")
    return p


def find_file(task: str, folder: Path, names: Sequence[str], what: str) -> Path:
    """The first of ``names`` (file names) found in ``folder`` or below it, in sorted order."""
    for name in names:
        direct = folder / name
        if direct.is_file():
            return direct
    for name in names:
        found = sorted(folder.rglob(name))
        if found:
            return found[0]
    avail = sorted({p.name for p in folder.rglob("*.json*")})[:40]
    raise InputError(
        f"{task}: no file {' or '.join(map(repr, names))} for {what} under {folder}; files there: "
        + (", ".join(avail) or "(none)")
    )


# -- choosing samples ------------------------------------------------------------------------------


def select(items: Sequence[Any], limit: int, seed: int) -> list[Any]:
    """The items one ``cases`` call yields: all of them, in file order, when ``limit`` is 0; otherwise
    the ``seed``-th window of ``limit`` consecutive items (wrapping around the end), so seeds
    ``0 … ceil(n / limit) - 1`` cover the file once (``lc eval --samples``)."""
    n = len(items)
    if limit <= 0 or limit >= n:
        return list(items)
    start = (seed * limit) % n
    return [items[(start + i) % n] for i in range(limit)]


# -- fitting a prompt to the budget ----------------------------------------------------------------


class Fitted(NamedTuple):
    """A prompt fitted to a token budget.

    :ivar prompt: the complete prompt (rendered).
    :ivar body: the (possibly truncated) text that was rendered.
    :ivar tokens: the prompt's tokens, special tokens included.
    :ivar original: the tokens the untruncated prompt needed.
    :ivar kept: ``(head, tail)`` tokens of the body kept when it was truncated, else ``None``.
    """

    prompt: str
    body: str
    tokens: int
    original: int
    kept: tuple[int, int] | None


def fit_prompt(
    tokenizer: Any,
    body: str,
    budget: int,
    render: Callable[[str], str],
    *,
    task: str,
    max_new_tokens: int,
) -> Fitted:
    """``render(body)`` when it needs at most ``budget`` tokens, else ``body`` truncated in the middle.

    LongBench tokenizes the prompt and, past ``max_length`` tokens, keeps the first and the last
    ``max_length // 2``: the head half includes BOS, so of ``k`` kept text tokens the tail holds
    ``ceil(k / 2)`` and the head the rest. Here ``k`` is what the budget leaves after the tokens
    ``render`` adds (BOS, a chat template); the cut is made at token boundaries of the text (offsets),
    and the result is counted again — tokens can merge across the join — and shortened until it fits.

    :raises InputError: when not even one token of the body fits.
    """
    prompt = render(body)
    total = count_prompt_tokens(tokenizer, prompt)
    if total <= budget:
        return Fitted(prompt, body, total, total, None)
    tm = TokenMap(tokenizer, body)
    overhead = total - tm.n
    k = budget - overhead
    for _ in range(64):
        if k < 2:
            raise InputError(
                f"{task}: a length of {budget + max_new_tokens} tokens is too short: {max_new_tokens} are kept "
                f"for the answer and {overhead} for special tokens and the chat template, which leaves no room "
                f"for the prompt; ask for at least {overhead + 2 + max_new_tokens}"
            )
        tail = (k + 1) // 2
        head = k - tail
        cut = body[: tm.head_end(head)] + body[tm.tail_start(tail) :]
        prompt = render(cut)
        tokens = count_prompt_tokens(tokenizer, prompt)
        if tokens <= budget:
            return Fitted(prompt, cut, tokens, total, (head, tail))
        k -= tokens - budget
    raise InputError(f"{task}: could not fit the prompt to {budget} tokens")  # pragma: no cover


def renderer(tokenizer: Any, answer_prefix: str = "", *, chat: bool = True) -> Callable[[str], str]:
    """``body -> prompt``: :func:`render_prompt` (the chat template under ``--chat-template``), or with
    ``chat=False`` the plain text even under ``--chat-template`` (LongBench's few-shot and code datasets
    skip the chat wrapper), the BOS token then written out because the runner adds no special tokens
    to chat-rendered prompts."""
    if chat or not getattr(tokenizer, "lc_chat_template", False):
        return lambda body: render_prompt(tokenizer, body, answer_prefix)
    inner = getattr(tokenizer, "tokenizer", tokenizer)
    bos = ""
    try:
        ids = inner("x", add_special_tokens=True)["input_ids"]
        plain = inner("x", add_special_tokens=False)["input_ids"]
        if len(ids) > len(plain) and getattr(inner, "bos_token_id", None) == ids[0]:
            bos = inner.bos_token or ""
    except Exception:  # a minimal tokenizer: no BOS to write
        bos = ""
    return lambda body: bos + body + answer_prefix


# -- the task base ---------------------------------------------------------------------------------


def limit_field() -> Any:
    return attrs.field(
        default=0,
        validator=at_least(0),
        metadata={
            "help": "questions per case set: 0 = every question of the file in order (the seed is then "
            "unused); N = the seed-th window of N questions, so --samples ceil(total/N) covers the file"
        },
    )


def path_field() -> Any:
    return attrs.field(
        default="",
        metadata={"help": "the data: a .jsonl/.json file in the official format or the benchmark's folder (required)"},
    )


def max_new_field(ref: str) -> Any:
    return attrs.field(
        default=0,
        validator=at_least(0),
        metadata={"help": f"tokens to generate; 0 = the benchmark's own budget ({ref})"},
    )


class Item(NamedTuple):
    """One question to turn into a case: the prompt parts and what scoring needs.

    ``body`` is the text before the answer prefix (truncated when too long); ``shared`` is the part of
    ``body`` several questions about one document have in common (``None``: nothing shared).
    """

    body: str
    answer: str
    references: tuple[str, ...]
    meta: dict[str, Any]
    max_new_tokens: int
    answer_prefix: str = ""
    query: str | None = None
    shared: str | None = None
    chat: bool = True


def build_cases(
    task: str,
    items: Sequence[Item],
    tokenizer: Any,
    *,
    length: int,
    depth: float,
    seed: int,
) -> Iterator[Case]:
    """A :class:`Case` per item, each prompt fitted to ``length`` (prompt with BOS + generation).

    Consecutive items with the same ``shared`` text whose prompts were not truncated get it (as
    rendered) as their ``context``, so the runner prefills it once.
    """
    if not 0.0 <= depth <= 1.0:
        raise InputError(f"{task}: depth must be between 0 and 1, got {depth}")
    built: list[tuple[Item, Fitted]] = []
    for item in items:
        budget = length - item.max_new_tokens
        fit = fit_prompt(
            tokenizer,
            item.body,
            budget,
            renderer(tokenizer, item.answer_prefix, chat=item.chat),
            task=task,
            max_new_tokens=item.max_new_tokens,
        )
        built.append((item, fit))
    for i, (item, fit) in enumerate(built):
        context = None
        if item.shared and fit.kept is None:
            neighbours = [built[j] for j in (i - 1, i + 1) if 0 <= j < len(built)]
            if any(o.shared == item.shared and f.kept is None for o, f in neighbours):
                at = fit.prompt.find(item.shared)
                if at >= 0:
                    context = fit.prompt[: at + len(item.shared)]
        query = item.query if item.query and fit.prompt.rstrip().endswith(item.query.strip()) else None
        meta = dict(item.meta)
        meta.update(
            prompt_tokens_untruncated=fit.original,
            truncated=fit.kept is not None,
            kept_head_tokens=fit.kept[0] if fit.kept else None,
            kept_tail_tokens=fit.kept[1] if fit.kept else None,
        )
        yield Case(
            task=task,
            prompt=fit.prompt,
            answer=item.answer,
            references=item.references,
            target_tokens=length,
            actual_tokens=fit.tokens + item.max_new_tokens,
            depth=depth,
            seed=seed,
            max_new_tokens=item.max_new_tokens,
            query=query,
            meta=meta,
            context=context,
        )


def stem_dataset(path: Path) -> str:
    """A data file's name without its extension (LongBench names its files after the dataset)."""
    name = path.name
    for ext in (".jsonl", ".json"):
        if name.endswith(ext):
            return name[: -len(ext)]
    return os.path.splitext(name)[0]


def data_cache_key(task: Any) -> tuple[Any, ...]:
    """The identity of a loader's data for the case cache (``longctx.evaluate._task_key`` calls
    ``task.cache_key()``): the resolved path with the size and mtime of every file under it, so an
    edited or replaced data file is never served from stale cached cases."""
    raw = getattr(getattr(task, "config", None), "path", None)
    if not raw:
        return ()
    path = Path(str(raw)).expanduser()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    out = []
    for f in files:
        try:
            st = os.stat(f)
            out.append((str(f.resolve()), st.st_size, st.st_mtime_ns))
        except OSError:
            out.append((str(f), None, None))
    return tuple(out)
