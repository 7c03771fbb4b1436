"""Shared evaluation machinery: test cases, length fitting, the evaluation loop and its summary.

An evaluation *task* (a plugin of the evaluation family, see :class:`longctx.hooks.evaluation.EvalTask`)
turns ``(tokenizer, length, depth, seed)`` into :class:`Case` objects and scores predictions. This module
holds what every task and every run needs:

* :class:`Case` — one prompt with its gold answer, its target and measured length and a stable id;
* :func:`fit_length` — fit a prompt to a token budget by searching the number of filler units (the
  RULER recipe: estimate tokens per unit, bracket, bisect — never linear growth);
* :func:`split_at_depth` — put a needle at a fraction of a haystack, at a sentence boundary;
* :func:`run_eval` — generate each case once, run it on every pipeline, score, and append every result
  to ``results.jsonl`` as soon as it exists (resumable; an interrupt loses nothing finished);
* :func:`summarize` / :func:`write_summary` — mean score and time per cell.

Lengths are always counted the way the pipeline will see them: the complete prompt *with* its special
tokens (BOS) in the evaluated model's own tokenizer, plus the generation budget — "how much window the
case needs" (RULER requires ``len(tokens) + tokens_to_generate <= max_seq_length``).
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import math
import os
import re
import sys
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import attrs

from longctx.errors import InputError, LongctxError

if TYPE_CHECKING:
    from longctx.hooks.evaluation import EvalTask
    from longctx.registry import Registry

RESULTS_FILE = "results.jsonl"
SUMMARY_FILE = "summary.json"
SUMMARY_CSV = "summary.csv"
#: The model ``run_eval_specs`` loads when neither the spec nor the caller names one.
DEFAULT_MODEL = "gemma-3-270m"


# -- cases -----------------------------------------------------------------------------------------


def _sha256(*parts: str) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode("utf-8"))
        h.update(b"\x00")
    return h.hexdigest()


def prompt_hash(prompt: str) -> str:
    """A short stable hash of a prompt's text."""
    return _sha256(prompt)[:16]


def derive_seed(*parts: Any) -> int:
    """A 63-bit seed derived from ``parts`` (stable across processes, unlike ``hash()``)."""
    return int(_sha256(*(repr(p) for p in parts))[:16], 16) >> 1


@attrs.frozen
class Case:
    """One evaluation case: a complete prompt and its gold answer.

    :ivar task: the task's name.
    :ivar prompt: the complete prompt text given to the model (question included).
    :ivar answer: the gold answer.
    :ivar target_tokens: the requested length (prompt with BOS + generation budget).
    :ivar actual_tokens: the same quantity measured with the tokenizer the case was built for.
    :ivar depth: where the evidence sits in the context, 0 (start) … 1 (end).
    :ivar seed: the seed the case was generated from.
    :ivar max_new_tokens: the generation budget.
    :ivar query: the final question line (kept by context reducers), or ``None``.
    :ivar meta: task-specific details (needle position, key, …), JSON-serialisable.
    """

    task: str
    prompt: str
    answer: str
    target_tokens: int
    actual_tokens: int
    depth: float
    seed: int
    max_new_tokens: int
    query: str | None = None
    meta: Mapping[str, Any] = attrs.field(factory=dict)
    #: every acceptable gold string (RULER's ``outputs``, LongBench's ``answers``); empty: just ``answer``
    references: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    #: the context several cases share (the prompt starts with it): the runner prefills it once and
    #: reuses its KV cache for each of their questions; ``None``: nothing shared
    context: str | None = None

    @property
    def golds(self) -> tuple[str, ...]:
        """The gold answers: :attr:`references`, or ``(answer,)`` when none are listed."""
        return self.references or (self.answer,)

    @property
    def id(self) -> str:
        """A stable id: the sha256 of task, prompt and answer (16 hex digits)."""
        return _sha256(self.task, self.prompt, self.answer)[:16]

    def to_json(self) -> dict[str, Any]:
        d = attrs.asdict(self, recurse=False)
        d["meta"] = dict(self.meta)
        d["references"] = list(self.references)
        d["id"] = self.id
        return d

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Case:
        fields = {f.name for f in attrs.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in fields})


# -- token counting and length fitting -------------------------------------------------------------


def count_prompt_tokens(tokenizer: Any, text: str) -> int:
    """Tokens of ``text`` as a pipeline feeds it to the model: special tokens (BOS) included."""
    if callable(tokenizer):
        try:
            enc = tokenizer(text, add_special_tokens=True, verbose=False)
        except TypeError:  # a minimal tokenizer without transformers' keyword arguments
            enc = tokenizer(text)
        ids = enc["input_ids"] if isinstance(enc, Mapping) or hasattr(enc, "keys") else enc
        return len(ids)
    return len(tokenizer.encode(text))


class ChatTokenizer:
    """A tokenizer that makes tasks render their prompts with the model's chat template.

    Tasks build prompts with :func:`render_prompt`; given this wrapper, the task's text becomes the
    user message, the template's generation prompt follows, then the answer prefix (RULER's recipe).
    Token counts then include the template (its special tokens are in the rendered text, so nothing
    more is added when counting or generating). Everything else is delegated to the wrapped tokenizer.
    """

    lc_chat_template = True

    def __init__(self, tokenizer: Any) -> None:
        if not getattr(tokenizer, "chat_template", None):
            name = getattr(tokenizer, "name_or_path", "") or type(tokenizer).__name__
            raise InputError(
                f"the tokenizer of {name!r} has no chat template; drop --chat-template to evaluate in "
                "completion mode (the default)"
            )
        self.tokenizer = tokenizer

    def __getattr__(self, name: str) -> Any:
        return getattr(self.tokenizer, name)

    def __call__(self, text: Any, *args: Any, **kwargs: Any) -> Any:
        kwargs["add_special_tokens"] = False
        return self.tokenizer(text, *args, **kwargs)

    def encode(self, text: str, **kwargs: Any) -> Any:
        kwargs["add_special_tokens"] = False
        return self.tokenizer.encode(text, **kwargs)

    def render(self, body: str, answer_prefix: str = "") -> str:
        """``body`` as the user turn, the assistant's generation prompt, then ``answer_prefix``."""
        head = self.tokenizer.apply_chat_template(
            [{"role": "user", "content": body}], tokenize=False, add_generation_prompt=True
        )
        return head + answer_prefix.lstrip("\n")


def render_prompt(tokenizer: Any, body: str, answer_prefix: str = "") -> str:
    """The complete prompt of a case: ``body + answer_prefix`` in completion mode (the default), or the
    chat-template rendering when ``tokenizer`` is a :class:`ChatTokenizer` (``lc eval --chat-template``).

    Tasks should build every prompt through this function so both modes count the same way.
    """
    if getattr(tokenizer, "lc_chat_template", False):
        return tokenizer.render(body, answer_prefix)
    return body + answer_prefix


def tokenizer_fingerprint(tokenizer: Any) -> str:
    """A short hash identifying how ``tokenizer`` counts tokens (class, name, size, chat mode and template,
    and the ids of a probe text) — the key of the generated-case cache."""
    probe = "Fingerprint: the quick brown fox, 12345 uuid-9f3e; 长文本 ünïcode.\n"
    try:
        ids = count_prompt_tokens(tokenizer, probe), list(tokenizer(probe)["input_ids"])
    except Exception:  # a minimal tokenizer
        ids = count_prompt_tokens(tokenizer, probe), None
    inner = getattr(tokenizer, "tokenizer", tokenizer) if getattr(tokenizer, "lc_chat_template", False) else tokenizer
    try:
        size = len(inner)
    except TypeError:
        size = None
    parts = (
        type(inner).__qualname__,
        getattr(inner, "name_or_path", ""),
        size,
        bool(getattr(tokenizer, "lc_chat_template", False)),
        getattr(inner, "chat_template", None) if getattr(tokenizer, "lc_chat_template", False) else None,
        ids,
    )
    return _sha256(*(repr(p) for p in parts))[:16]


class Fit(NamedTuple):
    """The result of :func:`fit_length`: ``n`` filler units give ``text`` of ``tokens`` tokens
    (prompt with special tokens + ``reserve``)."""

    n: int
    text: str
    tokens: int


def fit_length(
    build: Callable[[int], str],
    tokenizer: Any,
    target: int,
    *,
    lo: int = 0,
    hi: int | None = None,
    reserve: int = 0,
    tolerance: float = 0.0,
    probe: int = 32,
) -> Fit:
    """The largest number of filler units ``n`` in ``[lo, hi]`` whose prompt ``build(n)`` needs at most
    ``target`` tokens (its tokens with BOS, plus ``reserve`` for the generation).

    The token count is assumed non-decreasing in ``n``. The search follows RULER: estimate the tokens
    per unit from a small probe, jump to the estimate, gallop (1, 2, 4, … units) to bracket the answer,
    then shrink the bracket by interpolation alternating with bisection — a handful of tokenizations of
    the full prompt however long it is. With
    ``tolerance > 0`` it stops as soon as a prompt is within ``tolerance · target`` tokens below the
    target.

    :raises InputError: when even ``build(lo)`` exceeds the target.
    """
    if hi is not None and hi < lo:
        raise ValueError(f"fit_length: hi={hi} < lo={lo}")
    seen: dict[int, tuple[int, str]] = {}

    def f(n: int) -> int:
        if n not in seen:
            text = build(n)
            seen[n] = (count_prompt_tokens(tokenizer, text) + reserve, text)
        return seen[n][0]

    def result(n: int) -> Fit:
        return Fit(n, seen[n][1], seen[n][0])

    slack = math.floor(tolerance * target)
    if f(lo) > target:
        raise InputError(
            f"the prompt needs {f(lo)} tokens (including {reserve} to generate) before any filler is "
            f"added, more than the target length {target}; ask for a longer length"
        )
    if hi is not None and f(hi) <= target:
        return result(hi)

    def clamp(n: int) -> int:
        return n if hi is None else min(n, hi)

    good = lo  # largest n known to fit
    bad = hi  # smallest n known not to fit (None: unknown)
    if target - f(good) <= slack:
        return result(good)

    # 1. estimate tokens per unit from a probe, then secant steps: each re-estimates the tokens per unit
    #    over the longest span measured so far and jumps to the predicted answer
    last = clamp(lo + max(1, probe))
    for _ in range(4):
        if f(last) <= target:
            good = max(good, last)
        else:
            bad = last if bad is None else min(bad, last)
        if target - f(good) <= slack or (bad is not None and bad - good <= 1):
            return result(good)
        per_unit = (f(last) - f(lo)) / (last - lo)
        if per_unit <= 0:
            break
        guess = clamp(max(good + int((target - f(good)) / per_unit), good + 1))
        if bad is not None:
            guess = min(guess, bad - 1)
        if guess in seen:
            break
        last = guess
    # 2. gallop away from the estimate until the answer is bracketed
    step = 1
    while bad is None:
        if target - f(good) <= slack:
            return result(good)
        n = clamp(good + step)
        if f(n) <= target:
            good = n
            if hi is not None and n == hi:
                return result(good)
        else:
            bad = n
        step *= 2
        if step > 1 << 62:
            raise LongctxError("fit_length: the prompt does not grow with the number of filler units")
    # 3. shrink the bracket [good, bad): interpolate between its ends (one tokenization usually lands
    #    within a unit or two when the estimate overshot slightly), alternating with bisection so the
    #    worst case stays logarithmic
    interpolate = True
    while bad - good > 1 and target - f(good) > slack:
        span = f(bad) - f(good)
        if interpolate and span > 0:
            n = good + int((target - f(good)) * (bad - good) / span)
            n = min(max(n, good + 1), bad - 1)
        else:
            n = (good + bad) // 2
        interpolate = not interpolate
        if f(n) <= target:
            good = n
        else:
            bad = n
    return result(good)


def split_at_depth(sentences: Sequence[str], depth: float, *, sep: str = " ") -> tuple[str, str, float]:
    """Split the haystack ``sep.join(sentences)`` at the sentence boundary closest to ``depth`` (a fraction
    of its characters). Returns ``(prefix, suffix, actual_depth)``; ``depth`` 0 puts everything in the
    suffix and 1 everything in the prefix."""
    if not 0.0 <= depth <= 1.0:
        raise InputError(f"depth must be between 0 and 1, got {depth}")
    if not sentences:
        return "", "", depth
    # ends[b] = characters of sep.join(sentences[:b]) (b = 0 … n)
    ends = [0, *(e - len(sep) for e in itertools.accumulate(len(s) + len(sep) for s in sentences))]
    total = ends[-1]
    if total == 0:
        return "", sep.join(sentences), depth
    best = min(range(len(ends)), key=lambda b: (abs(ends[b] / total - depth), b))
    return sep.join(sentences[:best]), sep.join(sentences[best:]), ends[best] / total


def first_integer(text: str) -> int | None:
    """The first run of digits in ``text`` as an int (the passkey/landmark scorer's reading)."""
    m = re.search(r"\d+", text)
    return int(m.group()) if m else None


# -- building tasks from names ---------------------------------------------------------------------


def load_tasks(names: Iterable[str], registry: Registry | None = None) -> dict[str, EvalTask]:
    """Build evaluation tasks from ``"name"`` or ``"name:key=value,…"`` strings, keyed by the string
    with typed, non-default parameters (``"passkey:max_new_tokens=16"``)."""
    from longctx.params import config_values, make_config
    from longctx.registry import get_registry
    from longctx.spec import ComponentSpec

    registry = registry or get_registry()
    out: dict[str, EvalTask] = {}
    for text in names:
        comp = ComponentSpec.parse(text)
        tech = registry.get("evaluation", comp.name)
        cfg = make_config(tech.config, comp.params, technique=comp.name)
        key = str(ComponentSpec(comp.name, config_values(cfg, only_changed=True)))
        out[key] = tech.build(cfg, None)
    return out


# -- the evaluation loop ---------------------------------------------------------------------------


def _spec_string(pipeline: Any, name: str) -> str:
    spec = getattr(pipeline, "spec", None)
    return str(spec) if spec is not None else name


def _registry_of(pipelines: Mapping[str, Any]) -> Registry:
    for p in pipelines.values():
        reg = getattr(p, "registry", None)
        if reg is not None:
            return reg
    from longctx.registry import get_registry

    return get_registry()


def read_results(path: Path) -> list[dict[str, Any]]:
    """The results recorded in a ``results.jsonl``; a torn last line (a killed writer) is ignored."""
    out = []
    if not path.exists():
        return out
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            line = line.strip()
            if not line:
                continue
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return out


def _result_key(r: Mapping[str, Any]) -> tuple[str, str, str, str, int]:
    """What makes a result reusable: the same case of the same task on the same pipeline (name and spec)
    in the same length cell (a prompt that needs no truncation is identical at several lengths)."""
    return (r["task"], r["case_id"], r["pipeline"], r.get("spec", r["pipeline"]), int(r["target_tokens"]))


class _Progress:
    """A rich progress bar on stderr, or nothing."""

    def __init__(self, enabled: bool, total: int) -> None:
        self._bar = None
        if enabled:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._bar = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=Console(file=sys.stderr),
            )
            self._id = self._bar.add_task("eval", total=total)
            self._bar.start()

    def describe(self, text: str) -> None:
        if self._bar is not None:
            self._bar.update(self._id, description=text)

    def advance(self) -> None:
        if self._bar is not None:
            self._bar.advance(self._id)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()


def _task_key(tname: str, task: EvalTask) -> str:
    """What identifies a task's generator: its name with parameters, the source of the package that
    defines it (every module of the plugin package, so a changed shared helper also invalidates cached
    cases), and the task's own ``cache_key()`` when it has one (a loader's data file and its mtime)."""
    import inspect

    module = inspect.getmodule(type(task))
    h = hashlib.sha256(tname.encode("utf-8"))
    files: list[Path] = []
    mod_file = getattr(module, "__file__", None)
    if mod_file:
        path = Path(mod_file)
        # the plugin package: the module's folder when it is a package's __init__ or inside one
        folder = path.parent if (path.parent / "__init__.py").exists() else None
        files = sorted(folder.rglob("*.py")) if folder is not None and path.parent.name != "longctx" else [path]
    if not files:
        h.update(type(task).__qualname__.encode("utf-8"))
    extra = getattr(task, "cache_key", None)
    if callable(extra):  # e.g. a loader's data file path, size and mtime
        h.update(repr(extra()).encode("utf-8"))
    for f in files:
        try:
            h.update(f.read_bytes())
        except OSError:
            h.update(str(f).encode("utf-8"))
    return h.hexdigest()[:16]


def case_cache_dir() -> Path:
    """Where generated cases are cached: ``<longctx cache dir>/cases`` (see :func:`longctx.models.cache_dir`)."""
    from longctx.models import cache_dir

    return Path(cache_dir()) / "cases"


def case_cache_folder(cache: Path, tname: str, task: EvalTask, tokenizer: Any) -> Path:
    """The folder of one task's cached cases for one tokenizer: ``cache/<tokenizer fingerprint>/<task key>``.

    Computing it tokenizes a probe and hashes the task's plugin package, so a run computes it once per
    task, not once per cell."""
    return cache / tokenizer_fingerprint(tokenizer) / _task_key(tname, task)


def cached_cases(
    task: EvalTask,
    tname: str,
    tokenizer: Any,
    *,
    length: int,
    depth: float,
    seed: int,
    cache: Path | None,
    folder: Path | None = None,
) -> list[Case]:
    """``task.cases(…)`` for one cell, read from / written to the case cache when ``cache`` is a folder.

    The cache key is (tokenizer fingerprint, task name + parameters + generator source, length, depth,
    seed); files are JSON, written atomically. A damaged file is regenerated. ``folder`` is the task's
    :func:`case_cache_folder`, when the caller has it already.
    """

    def build() -> list[Case]:
        return list(task.cases(tokenizer, length=length, depth=depth, seed=seed))

    if cache is None:
        return build()
    if folder is None:
        folder = case_cache_folder(cache, tname, task, tokenizer)
    path = folder / f"L{length}-d{depth:g}-s{seed}.json"
    if path.exists():
        try:
            return [Case.from_json(d) for d in json.loads(path.read_text(encoding="utf-8"))]
        except (OSError, ValueError, TypeError, KeyError):
            pass
    cases = build()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps([c.to_json() for c in cases], ensure_ascii=False), encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only cache only costs regeneration
    return cases


def _cells(
    tname: str,
    task: EvalTask,
    tokenizer: Any,
    lengths: Sequence[int],
    depths: Sequence[float],
    samples: int,
    seed: int,
    cache: Path | None,
) -> Iterator[tuple[int, int, Case]]:
    """``(sample, index, case)`` for every (length, depth, sample); sample ``s`` uses seed ``seed + s``,
    so one seed gives the same keys at every length and depth (paired comparisons, as LongLoRA). A task
    whose ``depth_sensitive`` is false is built once per length (at depth 0.5)."""
    cell_depths = depths if getattr(task, "depth_sensitive", True) else (0.5,)
    folder = case_cache_folder(cache, tname, task, tokenizer) if cache is not None else None
    for length in lengths:
        for depth in cell_depths:
            for s in range(samples):
                cases = cached_cases(
                    task, tname, tokenizer, length=length, depth=depth, seed=seed + s, cache=cache, folder=folder
                )
                for j, case in enumerate(cases):
                    yield s, j, case


def run_eval(
    pipelines: Mapping[str, Any],
    tasks: Mapping[str, EvalTask],
    *,
    lengths: Sequence[int],
    depths: Sequence[float] = (0.5,),
    samples: int = 1,
    seed: int = 0,
    out_dir: str | Path | None = None,
    progress: bool = False,
    registry: Registry | None = None,
    tokenizer: Any = None,
    chat_template: bool = False,
    case_cache: str | Path | None = None,
    reuse_prefix: bool = True,
) -> list[dict[str, Any]]:
    """Evaluate every task on every pipeline.

    Cases are generated once per (task, length, depth, sample) with the *first* pipeline's tokenizer (or
    ``tokenizer``), so all pipelines see identical prompts; sample ``s`` uses seed ``seed + s``. With
    ``chat_template`` the prompts are rendered with the tokenizer's chat template (:class:`ChatTokenizer`).
    With ``case_cache`` (a folder) generated cases are cached there (:func:`cached_cases`).

    A task runs a case either through its own ``evaluate(pipeline, case)`` (perplexity, embedding
    retrieval: anything that is not "generate, then score") or, by default, through
    ``pipeline.generate(case.prompt, query=case.query, max_new_tokens=case.max_new_tokens)`` and
    ``task.score``; a task's optional ``metrics(prediction, case)`` adds named sub-scores. Consecutive
    cases sharing a ``context`` reuse one prefill of it (``reuse_prefix``; :meth:`Pipeline.prefill`).
    An :class:`InputError` (a prompt longer than the window, …) becomes a result with ``error`` set and
    score 0. Each task × pipeline run goes through the ``lc_run_evaluate`` hook so plugins can wrap it.

    With ``out_dir``, every result is appended to ``out_dir/results.jsonl`` and flushed as soon as it
    exists; running again with the same ``out_dir`` skips the (task, case, pipeline name and spec)
    results already there, so an interrupted run resumes where it stopped.

    :returns: the result dicts of every requested case and pipeline (recorded ones included).
    """
    if not pipelines:
        raise InputError("run_eval needs at least one pipeline")
    if not tasks:
        raise InputError("run_eval needs at least one task")
    if samples < 1:
        raise InputError(f"samples must be >= 1, got {samples}")
    if tokenizer is None:
        tokenizer = getattr(next(iter(pipelines.values())), "tokenizer", None)
    if tokenizer is None:
        raise InputError("the first pipeline has no tokenizer to build the cases with")
    if chat_template and not getattr(tokenizer, "lc_chat_template", False):
        tokenizer = ChatTokenizer(tokenizer)
    registry = registry or _registry_of(pipelines)
    cache = Path(case_cache) if case_cache is not None else None

    done: dict[tuple[str, str, str, str, int], dict[str, Any]] = {}
    fh = None
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        path = out / RESULTS_FILE
        done = {_result_key(r): r for r in read_results(path)}
        fh = path.open("a", encoding="utf-8")
        if path.stat().st_size and not _ends_with_newline(path):
            fh.write("\n")  # a torn line left by a killed run
            fh.flush()

    # every case first (cheap, and a task that cannot build its cases fails before any generation)
    all_cases = {t: list(_cells(t, tk, tokenizer, lengths, depths, samples, seed, cache)) for t, tk in tasks.items()}
    opts = _RunOptions(
        done=done,
        fh=fh,
        add_special_tokens=not getattr(tokenizer, "lc_chat_template", False),
        reuse_prefix=reuse_prefix,
    )
    results: list[dict[str, Any]] = []
    bar = _Progress(progress, sum(len(c) for c in all_cases.values()) * len(pipelines))
    try:
        for tname, task in tasks.items():
            cases = all_cases[tname]
            for pname, pipeline in pipelines.items():
                spec = _spec_string(pipeline, pname)
                bar.describe(f"{tname} · {pname}")
                run = functools.partial(_run_cases, tname, task, pname, pipeline, spec, cases, opts=opts, bar=bar)
                rows = registry.pm.hook.lc_run_evaluate(task=tname, pipeline=spec, run=run)
                results.extend(rows if rows is not None else [])
    finally:
        bar.close()
        if fh is not None:
            fh.close()
    return results


def _ends_with_newline(path: Path) -> bool:
    with path.open("rb") as fh:
        fh.seek(-1, 2)
        return fh.read(1) == b"\n"


@attrs.define
class _RunOptions:
    done: dict[tuple[str, str, str, str, int], dict[str, Any]]
    fh: Any
    add_special_tokens: bool
    reuse_prefix: bool


def _run_cases(
    tname: str,
    task: EvalTask,
    pname: str,
    pipeline: Any,
    spec: str,
    cases: Sequence[tuple[int, int, Case]],
    *,
    opts: _RunOptions,
    bar: _Progress,
) -> list[dict[str, Any]]:
    """Run ``cases`` on one pipeline, skipping recorded ones; each new result is written and flushed.

    Consecutive cases with the same ``context`` share one :meth:`Pipeline.prefill` (made only when one of
    them still has to run)."""
    rows = []
    prefix: Any = None
    prefix_context: str | None = None
    own = getattr(task, "evaluate", None)
    for sample, index, case in cases:
        key = (tname, case.id, pname, spec, int(case.target_tokens))
        row = opts.done.get(key)
        if row is None:
            if (
                own is None
                and opts.reuse_prefix
                and case.context
                and case.context != prefix_context
                and hasattr(pipeline, "prefill")
            ):
                prefix_context = case.context
                prefix = pipeline.prefill(case.context, add_special_tokens=opts.add_special_tokens)
            use = prefix if prefix_context is not None and case.context == prefix_context else None
            row = _run_case(tname, task, pname, pipeline, spec, case, sample, index, prefix=use, opts=opts)
            if opts.fh is not None:
                opts.fh.write(json.dumps(row, ensure_ascii=False) + "\n")
                opts.fh.flush()
            opts.done[key] = row
        rows.append(row)
        bar.advance()
    return rows


def _run_case(
    tname: str,
    task: EvalTask,
    pname: str,
    pipeline: Any,
    spec: str,
    case: Case,
    sample: int,
    index: int,
    *,
    prefix: Any = None,
    opts: _RunOptions | None = None,
) -> dict[str, Any]:
    row: dict[str, Any] = {
        "case_id": case.id,
        "prompt_hash": prompt_hash(case.prompt),
        "task": tname,
        "pipeline": pname,
        "spec": spec,
        "target_tokens": case.target_tokens,
        "actual_tokens": case.actual_tokens,
        "depth": case.depth,
        "seed": case.seed,
        "sample": sample,
        "index": index,
        "max_new_tokens": case.max_new_tokens,
        "answer": case.answer,
    }
    own = getattr(task, "evaluate", None)
    try:
        if own is not None:
            out = dict(own(pipeline, case))
            row.update(
                prediction=str(out.pop("prediction", "")),
                score=float(out.pop("score")),
                seconds=out.pop("seconds", None),
                prompt_tokens=out.pop("prompt_tokens", None),
                new_tokens=out.pop("new_tokens", None),
                kv_bytes=out.pop("kv_bytes", None),
                metrics={k: float(v) for k, v in out.pop("metrics", {}).items()},
                error=None,
            )
            if out:
                row["extra"] = out
            return row
        kwargs: dict[str, Any] = {"query": case.query, "max_new_tokens": case.max_new_tokens}
        if opts is not None and not opts.add_special_tokens:
            kwargs["add_special_tokens"] = False
        if prefix is not None:
            kwargs["prefix"] = prefix
        gen = pipeline.generate(case.prompt, **kwargs)
    except InputError as e:
        row.update(
            prediction="", score=0.0, seconds=None, prompt_tokens=None, new_tokens=None, kv_bytes=None, error=str(e)
        )
        return row
    metrics = getattr(task, "metrics", None)
    row.update(
        prediction=gen.text,
        score=float(task.score(gen.text, case)),
        seconds=gen.seconds,
        prefill_seconds=getattr(gen, "prefill_seconds", None),
        prompt_tokens=gen.prompt_tokens,
        new_tokens=getattr(gen, "new_tokens", None),
        reused_tokens=getattr(gen, "reused_tokens", 0),
        prefix_seconds=(prefix.seconds if prefix is not None and getattr(gen, "reused_tokens", 0) else None),
        kv_bytes=gen.kv_bytes,
        error=None,
    )
    if metrics is not None:
        row["metrics"] = {k: float(v) for k, v in metrics(gen.text, case).items()}
    return row


# -- summaries -------------------------------------------------------------------------------------


def _mean(xs: list[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


def summarize(
    results: Iterable[Mapping[str, Any]], tags: Mapping[str, Mapping[str, str]] | None = None
) -> list[dict[str, Any]]:
    """Mean ``score``, count ``n``, ``errors``, mean ``seconds`` (of the cases that ran) and the mean of
    each named sub-metric per task × length × depth × pipeline, and per task × length × pipeline
    (``depth`` is ``None`` in those rows). ``tags`` (task → Goldman et al.'s diffusion/scope) are copied
    onto the rows. Sorted by task, pipeline, length, then depth (the per-length row after its depths)."""
    groups: dict[tuple[Any, ...], list[Mapping[str, Any]]] = defaultdict(list)
    for r in results:
        base = (r["task"], r["pipeline"], r["target_tokens"])
        groups[(*base, r["depth"])].append(r)
        groups[(*base, None)].append(r)
    out = []
    for (task, pipeline, length, depth), rows in groups.items():
        row: dict[str, Any] = {
            "task": task,
            "pipeline": pipeline,
            "spec": rows[0].get("spec", pipeline),
            "length": length,
            "depth": depth,
            "n": len(rows),
            "score": _mean([float(r["score"]) for r in rows]),
            "seconds": _mean([float(r["seconds"]) for r in rows if r.get("seconds") is not None]),
            "errors": sum(1 for r in rows if r.get("error")),
        }
        names = sorted({k for r in rows for k in (r.get("metrics") or {})})
        if names:
            row["metrics"] = {
                k: _mean([float(r["metrics"][k]) for r in rows if k in (r.get("metrics") or {})]) for k in names
            }
        t = (tags or {}).get(task)
        if t:
            row["diffusion"], row["scope"] = t.get("diffusion"), t.get("scope")
        out.append(row)
    out.sort(key=lambda d: (d["task"], d["pipeline"], d["length"], d["depth"] is None, d["depth"] or 0.0))
    return out


def write_summary(out_dir: str | Path, summary: list[dict[str, Any]] | Mapping[str, Any]) -> Path:
    """Write ``summary`` to ``out_dir/summary.json`` and, for a summary with ``by_length`` / ``by_depth``
    rows, the rows to ``out_dir/summary.csv`` (one line per task × length × depth × pipeline; the
    per-length rows have an empty depth). Returns the JSON path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / SUMMARY_FILE
    path.write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    if isinstance(summary, Mapping) and ("by_length" in summary or "by_depth" in summary):
        rows = [*summary.get("by_depth", []), *summary.get("by_length", [])]
        rows.sort(key=lambda d: (d["task"], d["pipeline"], d["length"], d["depth"] is None, d["depth"] or 0.0))
        _write_csv(out / SUMMARY_CSV, rows)
    return path


def _write_csv(path: Path, rows: Sequence[Mapping[str, Any]]) -> None:
    import csv

    metric_names = sorted({k for r in rows for k in (r.get("metrics") or {})})
    cols = ["task", "diffusion", "scope", "pipeline", "spec", "length", "depth", "n", "score", "errors", "seconds"]
    with path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(cols + metric_names)
        for r in rows:
            vals = ["" if r.get(c) is None else r.get(c) for c in cols]
            vals += ["" if (r.get("metrics") or {}).get(m) is None else r["metrics"][m] for m in metric_names]
            w.writerow(vals)


# -- from specs (the ``lc eval`` entry point) -------------------------------------------------------


def run_eval_specs(
    specs: Mapping[str, Any],
    *,
    tasks: Sequence[str],
    lengths: Sequence[int],
    depths: Sequence[float] = (0.5,),
    samples: int = 1,
    seed: int = 0,
    out_dir: str | Path | None = None,
    registry: Registry | None = None,
    model: str | None = None,
    progress: bool = False,
    chat_template: bool = False,
    case_cache: str | Path | bool | None = True,
    figures: bool = True,
) -> dict[str, Any]:
    """Compose each named :class:`~longctx.spec.PipelineSpec` in turn, evaluate it, undo it.

    Pipelines are composed one at a time (two pipelines on one model object would see each other's
    changes); each model is loaded once. Cases are built with the first pipeline's tokenizer, so every
    pipeline sees identical prompts. ``tasks`` are ``"name[:key=value,…]"`` strings. ``case_cache``:
    ``True`` caches generated cases under :func:`case_cache_dir`, a path caches them there, ``False`` /
    ``None`` not at all. With ``out_dir`` and ``figures``, the PNG figures of :mod:`longctx.figures` are
    drawn there too.

    :returns: ``{"by_depth": [...], "by_length": [...], "n_results": int, "results_file": str | None,
        "tasks": {task: tags}, "figures": [paths]}`` (rows as :func:`summarize`); also written to
        ``out_dir/summary.json`` and ``summary.csv``.
    """
    from longctx.models import load_model
    from longctx.registry import get_registry
    from longctx.runtime import compose

    registry = registry or get_registry()
    task_map = load_tasks(tasks, registry)
    cache = case_cache_dir() if case_cache is True else (case_cache or None)
    loaded: dict[str, Any] = {}
    case_tokenizer: Any = None
    results: list[dict[str, Any]] = []
    for name, spec in specs.items():
        model_name = getattr(spec, "model", None) or model or DEFAULT_MODEL
        if model_name not in loaded:
            loaded[model_name] = load_model(model_name)
        lm = loaded[model_name]
        if case_tokenizer is None:
            case_tokenizer = ChatTokenizer(lm.tokenizer) if chat_template else lm.tokenizer
        with compose(lm, spec, registry=registry) as pipeline:
            results += run_eval(
                {name: pipeline},
                task_map,
                lengths=lengths,
                depths=depths,
                samples=samples,
                seed=seed,
                out_dir=out_dir,
                progress=progress,
                registry=registry,
                tokenizer=case_tokenizer,
                case_cache=cache,
            )
    tags = {t: dict(getattr(task, "tags", {}) or {}) for t, task in task_map.items()}
    rows = summarize(results, tags)
    summary: dict[str, Any] = {
        "by_depth": [r for r in rows if r["depth"] is not None],
        "by_length": [r for r in rows if r["depth"] is None],
        "n_results": len(results),
        "results_file": str(Path(out_dir) / RESULTS_FILE) if out_dir is not None else None,
        "tasks": tags,
        "figures": [],
    }
    if out_dir is not None:
        if figures:
            from longctx.figures import draw_figures

            summary["figures"] = [str(p) for p in draw_figures(results, out_dir)]
        write_summary(out_dir, summary)
    return summary


__all__ = [
    "RESULTS_FILE",
    "SUMMARY_CSV",
    "SUMMARY_FILE",
    "Case",
    "ChatTokenizer",
    "Fit",
    "cached_cases",
    "case_cache_dir",
    "case_cache_folder",
    "count_prompt_tokens",
    "derive_seed",
    "first_integer",
    "fit_length",
    "load_tasks",
    "prompt_hash",
    "read_results",
    "render_prompt",
    "run_eval",
    "run_eval_specs",
    "split_at_depth",
    "summarize",
    "tokenizer_fingerprint",
    "write_summary",
]
