"""KV-storage contract: honest byte counts, logical length = tokens fed, no-eviction = dynamic cache,
budget kept under eviction, crop/reset work or refuse clearly.

The store is composed the way users compose it (``kv=NAME:…``, requirements filled in) and its caches are
fed through the model by hand: a prefill, then single tokens, checking the cache after every forward.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from typing import Any

from longctx.contrib.conformance import fixtures
from longctx.contrib.conformance.checks import check
from longctx.contrib.conformance.subject import Subject, difference

PREFILL = 24
STEPS = 12


def held_tensors(layer: Any) -> Iterator[tuple[str, Any]]:
    """``(attribute, tensor)`` for every tensor a cache layer holds: tensors (and tensors in lists, tuples
    and dicts) among its attributes, each object once. 0-dim tensors are bookkeeping (counters, window
    sizes), not stored states, and are left out."""
    import torch

    seen: set[int] = set()

    def walk(name: str, v: Any, depth: int = 0) -> Iterator[tuple[str, Any]]:
        if isinstance(v, torch.Tensor):
            if v.dim() > 0 and id(v) not in seen:
                seen.add(id(v))
                yield name, v
        elif depth < 2 and isinstance(v, (list, tuple)):
            for i, x in enumerate(v):
                yield from walk(f"{name}[{i}]", x, depth + 1)
        elif depth < 2 and isinstance(v, dict):
            for k, x in v.items():
                yield from walk(f"{name}[{k!r}]", x, depth + 1)

    for name, v in vars(layer).items():
        yield from walk(name, v)


def held_bytes(layer: Any) -> tuple[int, str]:
    """The bytes of the tensors a layer holds, and their breakdown for messages."""
    parts = [(n, t.numel() * t.element_size()) for n, t in held_tensors(layer)]
    return sum(b for _n, b in parts), " + ".join(f"{n} {b}" for n, b in parts) or "no tensors"


def _feed(lm: Any, cache: Any, ids: Any, schedule: list[int], after: Callable[[int], None]) -> list[Any]:
    """Feed ``ids`` through ``cache`` in chunks of ``schedule``; call ``after(tokens_fed)`` each time."""
    import torch

    from longctx.kvcache import cache_kwarg

    model = lm.model
    fed, logits = 0, []
    with torch.no_grad():
        for n in schedule:
            mask = torch.ones(ids.shape[0], fed + n, dtype=torch.long)
            out = model(
                input_ids=ids[:, fed : fed + n], attention_mask=mask, use_cache=True, **{cache_kwarg(model): cache}
            )
            fed += n
            logits.append(out.logits)
            after(fed)
    return logits


def _schedule(prefill: int = PREFILL, steps: int = STEPS) -> list[int]:
    return [prefill] + [1] * steps


def _eviction_params(s: Subject) -> dict[str, Any]:
    p = s.contract.eviction_params
    return dict(s.params if p is None else p)


def _no_eviction_params(s: Subject) -> dict[str, Any]:
    p = s.contract.no_eviction_params
    return dict(s.params if p is None else p)


@check("kv.nbytes_matches_tensors")
def nbytes_matches_tensors(s: Subject) -> None:
    """After every forward, each cache layer's reported bytes (``nbytes``, or keys + values when it
    reports none: :func:`longctx.kvcache.layer_nbytes`) equal the bytes of the tensors it actually holds,
    and :func:`longctx.kvcache.cache_nbytes` is their sum — under eviction too (``eviction_params``)."""
    from longctx.kvcache import cache_nbytes, layer_nbytes

    params = _eviction_params(s)

    def run(arch: str) -> None:
        lm = fixtures.tiny(arch)
        with s.composed(lm, params) as pipe:
            cache = pipe.new_cache()

            def after(fed: int) -> None:
                total = 0
                for i, layer in enumerate(cache.layers):
                    actual, parts = held_bytes(layer)
                    reported = layer_nbytes(layer)
                    if reported != actual:
                        s.fail(
                            f"layer {i} ({type(layer).__name__}) of tiny-{arch} to report the bytes of the tensors "
                            f"it holds: {actual} ({parts})",
                            f"nbytes = {reported} after {fed} tokens",
                        )
                    total += actual
                if cache_nbytes(cache) != total:
                    s.fail(f"cache_nbytes = {total} (the sum over layers)", f"{cache_nbytes(cache)} after {fed} tokens")

            _feed(lm, cache, fixtures.token_ids(PREFILL + STEPS, seed=30), _schedule(), after)

    s.over(s.contract.archs, run)


@check("kv.seq_length_counts_tokens")
def seq_length_counts_tokens(s: Subject) -> None:
    """After every forward, ``get_seq_length(layer)`` of every layer equals the number of tokens fed
    (the logical length, evicted tokens included: the model's next position)."""
    params = _eviction_params(s)

    def run(arch: str) -> None:
        lm = fixtures.tiny(arch)
        with s.composed(lm, params) as pipe:
            cache = pipe.new_cache()

            def after(fed: int) -> None:
                for i in range(len(cache.layers)):
                    got = cache.get_seq_length(i)
                    if got != fed:
                        s.fail(f"get_seq_length({i}) == {fed} (tokens fed) on tiny-{arch}", f"{got}")

            _feed(lm, cache, fixtures.token_ids(PREFILL + STEPS, seed=31), _schedule(), after)

    s.over(s.contract.archs, run)


def _generate(lm: Any, cache: Any, ids: Any, n: int) -> Any:
    import torch

    from longctx.kvcache import cache_kwarg

    with torch.no_grad():
        return lm.model.generate(
            ids, attention_mask=torch.ones_like(ids), max_new_tokens=n, do_sample=False, top_p=None, top_k=None,
            temperature=None, pad_token_id=0, output_logits=True, return_dict_in_generate=True,
            **{cache_kwarg(lm.model): cache},
        )  # fmt: skip


@check("kv.no_eviction_equals_dynamic")
def no_eviction_equals_dynamic(s: Subject) -> None:
    """With nothing to evict (``no_eviction_params``: a budget ≥ the tokens), greedy generation through
    the store's cache equals generation with transformers' dynamic cache: the same tokens and the same
    logits at every step (|Δ| ≤ 1e-4)."""
    import torch

    from longctx.kvcache import dynamic_cache

    params = _no_eviction_params(s)

    def run(arch: str) -> None:
        lm = fixtures.tiny(arch)
        ids = fixtures.token_ids(PREFILL, seed=32)
        ref = _generate(lm, dynamic_cache(lm.model), ids, 10)
        with s.composed(lm, params) as pipe:
            got = _generate(lm, pipe.new_cache(), ids, 10)
        if got.sequences.tolist() != ref.sequences.tolist():
            s.fail(
                f"the dynamic cache's greedy tokens on tiny-{arch} ({s.words(params)})",
                f"{got.sequences[0, PREFILL:].tolist()} instead of {ref.sequences[0, PREFILL:].tolist()}",
            )
        diff = difference(torch.stack(got.logits, 1), torch.stack(ref.logits, 1), 1e-4)
        if diff:
            s.fail(f"the dynamic cache's logits at every step on tiny-{arch} ({s.words(params)})", diff)

    s.over(s.contract.archs, run)


@check("kv.budget_respected")
def budget_respected(s: Subject) -> None:
    """Under eviction (``eviction_params``), no layer ever holds more than the store's per-layer token
    budget (the contract's ``budget``, else ``describe()["max_tokens_per_layer"]``), measured in bytes
    held against the bytes of that many tokens. Runs on fixtures without sliding layers (whose own window
    is not the store's budget); skipped when the store declares no budget."""
    from longctx.capabilities import ModelInfo

    params = _eviction_params(s)
    archs = [a for a in s.contract.archs if a in fixtures.CAUSAL_ARCHS and a != "gemma3"] or ["llama"]

    def run(arch: str) -> None:
        lm = fixtures.tiny(arch)
        info = ModelInfo.of(lm.model)
        with s.composed(lm, params) as pipe:
            budget = s.contract.budget
            if budget is None:
                budget = pipe.kv.describe().get("max_tokens_per_layer")
            if budget is None:
                s.skip("the store declares no budget (describe() has no max_tokens_per_layer; contract budget)")
            budget = int(budget)
            if budget >= 200:
                s.skip(f"budget {budget} tokens is beyond what the fixture feeds; set eviction_params")
            per_token = 2 * info.num_kv_heads * info.head_dim * 4  # keys + values, fp32
            cache = pipe.new_cache()
            most = {"tokens": 0.0}

            def after(fed: int) -> None:
                for i, layer in enumerate(cache.layers):
                    tokens = held_bytes(layer)[0] / per_token
                    most["tokens"] = max(most["tokens"], tokens)
                    if tokens > budget:
                        s.fail(
                            f"at most {budget} tokens ({budget * per_token} bytes) per layer on tiny-{arch} "
                            f"({s.words(params)})",
                            f"layer {i} holds {tokens:g} tokens after {fed} fed",
                        )

            prefill = max(PREFILL, budget + 8)
            _feed(lm, cache, fixtures.token_ids(prefill + STEPS, seed=33), _schedule(prefill), after)
        s.notes.append(f"tiny-{arch}: held at most {most['tokens']:g} of {budget} tokens per layer")

    s.over(archs, run)


def _crop(cache: Any, to: int, fed: int) -> None:
    """Crop ``cache`` to its first ``to`` tokens on every supported transformers version: ``crop`` takes
    a negative number of tokens to remove (≥ 5.x with ``tokens_to_remove``) or the length to keep."""
    params = list(inspect.signature(cache.crop).parameters)
    if params and params[0] == "tokens_to_remove":
        cache.crop(-(fed - to))
    else:
        cache.crop(to)


def _clear_error(e: BaseException) -> bool:
    from longctx.errors import LongctxError

    return isinstance(e, (LongctxError, ValueError, NotImplementedError)) and len(str(e)) > 10


@check("kv.crop_and_reset")
def crop_and_reset(s: Subject) -> None:
    """``crop`` and ``reset`` either work or refuse with a clear error. Working means: after cropping a
    20-token cache to 14, ``get_seq_length`` is 14 and feeding tokens 14–19 again gives their original
    logits; after ``reset``, ``get_seq_length`` is 0 and the prompt gives its original logits again (|Δ| ≤
    1e-4). A refusal must be a longctx error (or ValueError/NotImplementedError) with a
    message. Also tried under eviction, where refusing is the expected answer for most stores."""
    import torch

    from longctx.kvcache import cache_kwarg

    def fwd(lm: Any, cache: Any, ids: Any, start: int) -> Any:
        mask = torch.ones(1, start + ids.shape[1], dtype=torch.long)
        with torch.no_grad():
            return lm.model(input_ids=ids, attention_mask=mask, use_cache=True, **{cache_kwarg(lm.model): cache}).logits

    def run(arch: str) -> None:
        lm = fixtures.tiny(arch)
        ids = fixtures.token_ids(20, seed=34)
        with s.composed(lm, _no_eviction_params(s)) as pipe:
            cache = pipe.new_cache()
            first = fwd(lm, cache, ids, 0)
            try:
                _crop(cache, 14, 20)
            except Exception as e:
                if not _clear_error(e):
                    s.fail("crop to work or to refuse with a clear error", f"{type(e).__name__}: {e}")
                s.notes.append(f"crop refused: {type(e).__name__}: {e}")
            else:
                if cache.get_seq_length() != 14:
                    s.fail("get_seq_length() == 14 after crop to 14 tokens", str(cache.get_seq_length()))
                diff = difference(fwd(lm, cache, ids[:, 14:], 14), first[:, 14:], 1e-4)
                if diff:
                    s.fail("the original logits for tokens re-fed after crop", diff)
            try:
                cache.reset()
            except Exception as e:
                if not _clear_error(e):
                    s.fail("reset to work or to refuse with a clear error", f"{type(e).__name__}: {e}")
                s.notes.append(f"reset refused: {type(e).__name__}: {e}")
            else:
                if cache.get_seq_length() != 0:
                    s.fail("get_seq_length() == 0 after reset", str(cache.get_seq_length()))
                diff = difference(fwd(lm, cache, ids, 0), first, 1e-4)
                if diff:
                    s.fail("the original logits when the prompt is fed again after reset", diff)
        with s.composed(lm, _eviction_params(s)) as pipe:
            cache = pipe.new_cache()
            long = fixtures.token_ids(60, seed=35)
            fwd(lm, cache, long, 0)
            try:
                _crop(cache, 50, 60)
            except Exception as e:
                if not _clear_error(e):
                    s.fail("crop after eviction to work or to refuse with a clear error", f"{type(e).__name__}: {e}")
            else:
                if cache.get_seq_length() != 50:
                    s.fail("get_seq_length() == 50 after crop to 50 tokens", str(cache.get_seq_length()))

    # full-attention layers only: transformers' own sliding layers cannot crop once their window is full
    s.over([a for a in s.contract.archs if a in ("llama", "qwen2")] or ["llama"], run)
