"""The runtime: ``compose(model, spec) -> Pipeline``.

Composition validates everything before building anything — technique names and parameters,
``requires``/``conflicts`` and the model's capabilities — then builds the components in a fixed stage
order (reducers, positional, kv, attention, augmenters, evaluators) and applies the model-changing ones
through transformers' public extension points. Every change is recorded on the
:class:`ComposeContext`, so :meth:`Pipeline.undo` restores the model exactly.
"""

from __future__ import annotations

import contextlib
import copy
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import attrs
import torch
import torch.nn as nn
from transformers import LogitsProcessor, LogitsProcessorList

from longctx.capabilities import ModelInfo, attention_modules, text_config
from longctx.errors import CompositionError, IncompatibleModelError, InputError, LongctxError
from longctx.kvcache import cache_kwarg, cache_nbytes
from longctx.params import config_values, make_config
from longctx.registry import Registry, Technique, get_registry, parse_ref
from longctx.spec import LIST_SLOTS, SINGLE_SLOTS, SLOT_FAMILY, ComponentSpec, PipelineSpec
from longctx.text import Reduction

_MISSING = object()


class ComposeContext:
    """What a component sees while it is built and applied, and the undo log of every change.

    Components change the model only through :meth:`set_attr`, :meth:`install_attention`,
    :meth:`layer_context` and :meth:`on_undo`, so that the pipeline can be undone.
    """

    def __init__(self, model: nn.Module, tokenizer: Any, info: ModelInfo, registry: Registry) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.info = info
        self.registry = registry
        #: slot -> built component, filled in stage order (a component sees those built before it).
        self.components: dict[str, Any] = {}
        #: slot -> typed config of the component in that slot.
        self.configs: dict[str, Any] = {}
        #: the longest prompt + generation the composed model should be given; ``None`` = unbounded.
        self.max_context: int | None = info.max_position_embeddings
        self._undo: list[Callable[[], None]] = []

    # -- recorded changes ----------------------------------------------------------------------

    def set_attr(self, obj: Any, name: str, value: Any) -> None:
        """``setattr(obj, name, value)``, restored on undo (deleted if it did not exist)."""
        old = obj.__dict__.get(name, _MISSING) if hasattr(obj, "__dict__") else _MISSING
        if isinstance(obj, nn.Module) and name in obj._modules:
            old = obj._modules[name]
        setattr(obj, name, value)

        def restore() -> None:
            if old is _MISSING:
                with contextlib.suppress(AttributeError):
                    delattr(obj, name)
            else:
                setattr(obj, name, old)

        self._undo.append(restore)

    def on_undo(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` when the pipeline is undone (in reverse order of registration)."""
        self._undo.append(fn)

    def layer_context(self, module: nn.Module) -> dict[str, Any]:
        """The per-layer context object shared by cooperating components (an attention function and
        its cache, a scorer and an eviction policy), attached to the attention module as ``_lc``."""
        lc = module.__dict__.get("_lc")
        if lc is None:
            lc = {}
            self.set_attr(module, "_lc", lc)
        return lc

    def install_attention(
        self,
        fn: Callable[..., tuple[torch.Tensor, torch.Tensor | None]],
        *,
        mask: Callable[..., Any] | None = None,
        label: str = "attention",
    ) -> str:
        """Register ``fn`` (and its mask builder) under one neutral name and select it on the model.

        The name contains none of ``flash``/``sdpa``/``flex_attention``/``/``, which carry meaning in
        transformers. Without ``mask``, the mask builder of the model's current implementation is
        registered too — transformers silently drops masking when a name has no mask function.
        """
        from transformers import AttentionInterface
        from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, AttentionMaskInterface

        previous = text_config(self.model.config)._attn_implementation or "eager"
        key = f"lc_{label.replace('-', '_')}_{uuid.uuid4().hex[:8]}"
        if mask is None:
            base = previous if previous in ALL_MASK_ATTENTION_FUNCTIONS else "sdpa"
            mask = ALL_MASK_ATTENTION_FUNCTIONS[base]
        AttentionInterface.register(key, fn)
        AttentionMaskInterface.register(key, mask)
        self.model.set_attn_implementation(key)

        def restore() -> None:
            self.model.set_attn_implementation(previous)
            for mapping in (AttentionInterface._global_mapping, AttentionMaskInterface._global_mapping):
                mapping.pop(key, None)

        self._undo.append(restore)
        return key

    def undo(self) -> None:
        while self._undo:
            self._undo.pop()()


@attrs.frozen
class Generation:
    """The result of :meth:`Pipeline.generate`."""

    text: str
    prompt_tokens: int
    new_tokens: int
    #: wall time of the whole generation, and of the prefill (time to the first token's logits)
    seconds: float
    prefill_seconds: float
    #: bytes of the tensors the KV cache holds at the end
    kv_bytes: int
    reduction: Reduction | None = None
    #: prompt tokens taken from a :class:`Prefix`'s cache instead of being prefilled again (0: none)
    reused_tokens: int = 0

    def to_json(self) -> dict[str, Any]:
        d = attrs.asdict(self, recurse=False)
        d["reduction"] = self.reduction.to_json() if self.reduction else None
        return d


class _FirstLogitsClock(LogitsProcessor):
    """Records when the first logits arrive: the end of the prefill. Changes no score."""

    def __init__(self) -> None:
        self.first: float | None = None

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        if self.first is None:
            self.first = time.perf_counter()
        return scores


@attrs.frozen(eq=False)
class Prefix:
    """A prefilled context that several prompts start with (:meth:`Pipeline.prefill`).

    Passing it to :meth:`Pipeline.generate` reuses its KV cache (a copy of it) for the tokens the prompt
    shares with it, so multi-question tasks over one long context pay for the context's prefill once.
    """

    text: str
    #: the context's token ids, ``(1, n)``
    ids: torch.Tensor
    #: the cache after the context's prefill (never mutated: each use works on a copy)
    cache: Any
    #: wall time of the prefill
    seconds: float
    add_special_tokens: bool = True

    @property
    def tokens(self) -> int:
        return int(self.ids.shape[1])


def _split_query(prompt: str) -> tuple[str, str | None]:
    """The context and the query of a prompt: the query is its last non-empty line."""
    stripped = prompt.rstrip()
    head, sep, tail = stripped.rpartition("\n")
    if not sep or not head.strip():
        return prompt, None
    return head, tail


class Pipeline:
    """A model with composed long-context components.

    Use :meth:`generate` for text, :meth:`forward` / :meth:`score` for logits and likelihoods,
    :meth:`describe` for what was changed, and :meth:`undo` (or a ``with`` block) to restore the model.
    """

    def __init__(self, ctx: ComposeContext, spec: PipelineSpec, description: dict[str, Any]) -> None:
        self._ctx = ctx
        self.spec = spec
        self.model = ctx.model
        self.tokenizer = ctx.tokenizer
        self.info = ctx.info
        self.components = dict(ctx.components)
        self._description = description
        self._undone = False

    # -- introspection --------------------------------------------------------------------------

    @property
    def registry(self) -> Registry:
        """The registry the pipeline was composed with."""
        return self._ctx.registry

    @property
    def kv(self) -> Any:
        return self.components["kv"]

    @property
    def reducers(self) -> list[Any]:
        return self.components.get("reducers", [])

    @property
    def evaluators(self) -> list[Any]:
        return self.components.get("evaluators", [])

    @property
    def max_context(self) -> int | None:
        return self._ctx.max_context

    def describe(self) -> dict[str, Any]:
        """A JSON-serialisable account of the composition and of every change made to the model."""
        return {**self._description, "undone": self._undone}

    # -- running --------------------------------------------------------------------------------

    def _check_live(self) -> None:
        if self._undone:
            raise LongctxError("this pipeline was undone; compose again to use it")

    def new_cache(self) -> Any:
        """A fresh cache from the pipeline's KV store."""
        return self.kv.new_cache(self.model)

    def reduce(self, prompt: str, query: str | None = None) -> tuple[str, Reduction | None]:
        """Apply the reducers (in order) to the context of ``prompt``; the query is always kept.

        When ``query`` is ``None`` it is the prompt's last line. Returns the text to feed the model.
        """
        if not self.reducers:
            return prompt, None
        if query is None:
            context, query = _split_query(prompt)
        else:
            # a prompt that already ends with its query: reduce only what comes before it
            stripped, q = prompt.rstrip(), query.strip()
            context = stripped[: -len(q)].rstrip("\n") if q and stripped.endswith(q) else prompt
        tokens_in = len(self.tokenizer(context, add_special_tokens=False)["input_ids"])
        red: Reduction | None = None
        text = context
        for r in self.reducers:
            red = r.reduce(text, query=query, tokenizer=self.tokenizer)
            text = red.text
        assert red is not None
        red = attrs.evolve(red, tokens_in=tokens_in)
        full = text if query is None else (text.rstrip("\n") + "\n" + query)
        return full, red

    def encode(self, text: str, *, add_special_tokens: bool = True) -> torch.Tensor:
        """``text`` as a ``(1, n)`` tensor of token ids on the model's device (BOS added unless
        ``add_special_tokens`` is false, e.g. for text already rendered with a chat template)."""
        ids = self.tokenizer(text, return_tensors="pt", add_special_tokens=add_special_tokens)["input_ids"]
        return ids.to(self.model.device)

    def prefill(self, context: str, *, add_special_tokens: bool = True) -> Prefix | None:
        """Run ``context`` through the composed model once and keep its KV cache for reuse.

        Prompts that start with ``context`` can then pass the result to :meth:`generate` (``prefix=``) and
        only their remaining tokens are prefilled. Returns ``None`` where reuse would change the result:
        the pipeline has reducers (they rewrite the context per question), or its KV store evicted
        tokens during the prefill (the cache no longer holds the whole context).
        """
        self._check_live()
        if self.reducers or not context:
            return None
        ids = self.encode(context, add_special_tokens=add_special_tokens)
        cache = self.new_cache()
        t0 = time.perf_counter()
        with torch.inference_mode():
            self.model(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                use_cache=True,
                logits_to_keep=1,
                **{cache_kwarg(self.model): cache},
            )
        seconds = time.perf_counter() - t0
        get_len = getattr(cache, "get_seq_length", None)
        if get_len is None or int(get_len()) != ids.shape[1]:
            return None
        return Prefix(context, ids, cache, seconds, add_special_tokens)

    def _check_length(self, n_prompt: int, max_new_tokens: int) -> None:
        limit = self.max_context
        if limit is not None and n_prompt + max_new_tokens > limit:
            hint = (
                "add a reducer, e.g. reduce=truncate-middle:budget="
                f"{max(limit - max_new_tokens - 64, 64)} or reduce=bm25:budget={max(limit - max_new_tokens - 64, 64)}, "
                "or a positional extension such as positional=pi:factor=2"
            )
            raise InputError(
                f"the prompt has {n_prompt} tokens and {max_new_tokens} more would be generated, but the "
                f"model's window is {limit} tokens; {hint}"
            )

    def generate(
        self,
        prompt: str,
        *,
        query: str | None = None,
        max_new_tokens: int = 32,
        prefix: Prefix | None = None,
        add_special_tokens: bool = True,
        **generate_kwargs: Any,
    ) -> Generation:
        """Reduce, tokenize, check the window and greedily generate with a fresh cache from the KV store.

        With ``prefix`` (from :meth:`prefill`) and a prompt whose tokens start with the prefix's tokens,
        generation continues from a copy of the prefix's cache: the result is the same, only the
        shared tokens are not prefilled again (``Generation.reused_tokens``). A prefix that does not
        match is ignored. ``add_special_tokens=False`` tokenizes without BOS (chat-rendered prompts).
        """
        self._check_live()
        if not isinstance(prompt, str) or not prompt.strip():
            raise InputError("the prompt is empty")
        if max_new_tokens < 1:
            raise InputError(f"max_new_tokens must be >= 1, got {max_new_tokens}")

        def run() -> Generation:
            text, red = self.reduce(prompt, query)
            ids = self.encode(text, add_special_tokens=add_special_tokens)
            self._check_length(ids.shape[1], max_new_tokens)
            reused = 0
            if (
                prefix is not None
                and red is None
                and prefix.add_special_tokens == add_special_tokens
                and ids.shape[1] > prefix.tokens
                and torch.equal(ids[0, : prefix.tokens], prefix.ids[0].to(ids.device))
            ):
                cache = copy.deepcopy(prefix.cache)
                reused = prefix.tokens
            else:
                cache = self.new_cache()
            kwargs = {
                "max_new_tokens": max_new_tokens,
                "do_sample": False,
                "attention_mask": torch.ones_like(ids),
                cache_kwarg(self.model): cache,
                **generate_kwargs,
            }
            gen_cfg = getattr(self.model, "generation_config", None)
            if gen_cfg is not None and gen_cfg.pad_token_id is None and self.tokenizer is not None:
                kwargs.setdefault("pad_token_id", self.tokenizer.pad_token_id or self.tokenizer.eos_token_id)
            # generation_config may carry sampling defaults; greedy unless asked otherwise
            for k in ("top_p", "top_k", "temperature"):
                kwargs.setdefault(k, None)
            clock = _FirstLogitsClock()
            kwargs["logits_processor"] = LogitsProcessorList([clock, *(kwargs.get("logits_processor") or [])])
            t0 = time.perf_counter()
            with torch.inference_mode():
                out = self.model.generate(ids, **kwargs)
            seconds = time.perf_counter() - t0
            prefill = (clock.first - t0) if clock.first is not None else seconds
            new = out[0, ids.shape[1] :]
            return Generation(
                text=self.tokenizer.decode(new, skip_special_tokens=True),
                prompt_tokens=int(ids.shape[1]),
                new_tokens=int(new.shape[0]),
                seconds=seconds,
                prefill_seconds=prefill,
                kv_bytes=cache_nbytes(cache),
                reduction=red,
                reused_tokens=reused,
            )

        return self._ctx.registry.pm.hook.lc_run_generate(pipeline=self, prompt=prompt, run=run)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, **kwargs: Any) -> Any:
        """One forward pass of the composed model with a fresh cache from the KV store."""
        self._check_live()
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        kwargs.setdefault(cache_kwarg(self.model), self.new_cache())
        kwargs.setdefault("use_cache", True)
        return self.model(input_ids=input_ids, attention_mask=attention_mask, **kwargs)

    __call__ = forward

    def score(self, text: str) -> float:
        """Mean negative log-likelihood (nats per token) of ``text`` under the composed model."""
        ids = self.encode(text)
        if ids.shape[1] < 2:
            raise InputError("need at least two tokens to score")
        with torch.inference_mode():
            logits = self.forward(ids).logits.float()
        return float(torch.nn.functional.cross_entropy(logits[0, :-1], ids[0, 1:]))

    # -- undo -----------------------------------------------------------------------------------

    def undo(self) -> None:
        """Restore the model exactly as it was before composition. Idempotent."""
        if not self._undone:
            self._ctx.undo()
            self._undone = True

    decompose = undo

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.undo()

    def __repr__(self) -> str:
        return f"Pipeline({self.spec}, model={self.info.architecture})"


# -- composition ---------------------------------------------------------------------------------


def _resolve_requirements(spec: PipelineSpec, registry: Registry) -> tuple[PipelineSpec, list[str]]:
    """Fill requirements whose slot was left at its default; refuse those contradicted by the spec.

    A filled-in technique inherits the requiring component's parameters of the same name
    (``attention=streaming-llm:sinks=4,window=512`` fills ``kv=sink-window:sinks=4,window=512``).
    """
    notes: list[str] = []
    changed = True
    while changed:
        changed = False
        for _slot, family, comp in spec.components():
            tech = registry.get(family, comp.name)
            for ref in tech.requires:
                rfam, rname = parse_ref(ref)
                rslot = next(s for s, f in SLOT_FAMILY.items() if f == rfam)
                if rslot in SINGLE_SLOTS:
                    chosen: ComponentSpec | None = getattr(spec, rslot)
                    if chosen is not None and chosen.name == rname:
                        continue
                    if chosen is not None:
                        current = chosen
                        raise CompositionError(
                            f"{family} technique {comp.name!r} requires {rfam}={rname}, "
                            f"but {rfam}={current.name} was chosen"
                        )
                    rtech = registry.get(rfam, rname)
                    fields = {p.name for p in rtech.params}
                    cfg = make_config(tech.config, comp.params, technique=comp.name)
                    inherited = {k: v for k, v in config_values(cfg).items() if k in fields}
                    spec = attrs.evolve(spec, **{rslot: ComponentSpec(rname, inherited)})
                    notes.append(f"{rfam}={ComponentSpec(rname, inherited)} added: required by {comp.name}")
                    changed = True
                else:
                    items: tuple[ComponentSpec, ...] = getattr(spec, rslot)
                    if not any(c.name == rname for c in items):
                        spec = attrs.evolve(spec, **{rslot: (*items, ComponentSpec(rname))})
                        notes.append(f"{rfam}={rname} added: required by {comp.name}")
                        changed = True
    return spec, notes


def _check_conflicts(spec: PipelineSpec, registry: Registry) -> None:
    chosen = {(f, c.name) for _s, f, c in spec.components()}
    for _slot, family, comp in spec.components():
        for ref in registry.get(family, comp.name).conflicts:
            if parse_ref(ref) in chosen:
                raise CompositionError(f"{family}={comp.name} conflicts with {ref}; choose one of them")


def _check_capabilities(spec: PipelineSpec, registry: Registry, info: ModelInfo) -> None:
    have = info.capabilities
    for _slot, family, comp in spec.components():
        tech = registry.get(family, comp.name)
        missing = set(tech.capabilities) - have
        if missing:
            has = sorted(have) or ["none of the known capabilities"]
            hint = ""
            if "rope" in missing:
                hint = "; choose a RoPE model or a technique for absolute positions"
            elif "absolute-positions" in missing:
                hint = "; choose an encoder with learned absolute positions or a RoPE technique"
            raise IncompatibleModelError(
                f"{family} technique {comp.name!r} needs a model with {', '.join(sorted(missing))}, but "
                f"{info.architecture} ({info.model_type}) has {', '.join(has)}"
                + (" (absolute position embeddings)" if info.absolute_positions and "rope" in missing else "")
                + hint
            )


def _resolve_model(model: Any, tokenizer: Any) -> tuple[nn.Module, Any, str | None]:
    if isinstance(model, str):
        from longctx.models import load_model

        model = load_model(model)
    if isinstance(model, nn.Module):
        return model, tokenizer, getattr(model.config, "_name_or_path", None) or None
    if hasattr(model, "model") and hasattr(model, "tokenizer"):  # a LoadedModel
        return model.model, tokenizer or model.tokenizer, getattr(model, "name", None)
    raise TypeError(f"compose() takes a model name, a LoadedModel or a transformers model, not {type(model)}")


def compose(
    model: Any,
    spec: PipelineSpec | str | list[str] | None = None,
    *,
    tokenizer: Any = None,
    registry: Registry | None = None,
) -> Pipeline:
    """Compose the techniques of ``spec`` around ``model``.

    :param model: a model name or path (see :func:`longctx.load_model`), a :class:`LoadedModel`, or a
        transformers model (then pass ``tokenizer`` to generate text).
    :param spec: a :class:`PipelineSpec`, CLI words (``"positional=pi:factor=2 kv=sink-window"``) or
        ``None`` for the default (unchanged) pipeline.
    :raises LongctxError: with a message naming the component at fault; nothing is changed then.
    """
    if spec is None:
        spec = PipelineSpec()
    elif isinstance(spec, str):
        spec = PipelineSpec.from_words(spec.split())
    elif isinstance(spec, list):
        spec = PipelineSpec.from_words(spec)
    registry = registry or get_registry()
    mdl, tok, model_name = _resolve_model(model, tokenizer)
    if spec.model is None and model_name:
        spec = attrs.evolve(spec, model=model_name)
    info = ModelInfo.of(mdl)

    # 1. validate everything before building anything
    spec = spec.normalized(registry)
    spec, notes = _resolve_requirements(spec, registry)
    spec = spec.normalized(registry)
    _check_conflicts(spec, registry)
    _check_capabilities(spec, registry, info)
    resolved: list[tuple[str, Technique, Any]] = []
    for slot, family, comp in spec.components():
        tech = registry.get(family, comp.name)
        resolved.append((slot, tech, make_config(tech.config, comp.params, technique=comp.name)))

    # 2. build in stage order, 3. apply; roll back on any failure
    ctx = ComposeContext(mdl, tok, info, registry)
    changes: dict[str, Any] = {}
    try:
        for slot, tech, cfg in resolved:
            component = tech.build(cfg, ctx)
            if slot in LIST_SLOTS:
                ctx.components.setdefault(slot, []).append(component)
                ctx.configs.setdefault(slot, []).append(cfg)
            else:
                ctx.components[slot] = component
                ctx.configs[slot] = cfg
        for slot in ("positional", "attention"):
            changes[slot] = ctx.components[slot].apply(ctx)
    except BaseException:
        ctx.undo()
        raise

    def entry(slot: str, tech: Technique, cfg: Any) -> dict[str, Any]:
        return {
            "slot": slot,
            "family": tech.family,
            "technique": tech.name,
            "plugin": tech.plugin,
            "params": config_values(cfg),
            "paper": tech.paper,
        }

    description = {
        "spec": str(spec),
        "model": info.to_json(),
        "components": [entry(s, t, c) for s, t, c in resolved],
        "changes": changes,
        "kv": ctx.components["kv"].describe(),
        "max_context": ctx.max_context,
        "notes": notes,
    }
    pipeline = Pipeline(ctx, spec, description)
    registry.pm.hook.lc_pipeline_composed(pipeline=pipeline)
    return pipeline


def iter_attention_modules(model: nn.Module) -> Iterator[nn.Module]:
    """The model's self-attention modules, in layer order."""
    yield from sorted(attention_modules(model), key=lambda m: m.layer_idx)
