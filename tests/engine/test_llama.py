"""The llama.cpp wrapper: CPU feature detection and a real multi-token decode with the bundled model."""

from __future__ import annotations

from pathlib import Path

from ember.engine.llama import Batch, Context, ContextSpec, Model, Sampler, _wants_flash_attention, cpu_has_amx
from ember.store.bundled import bundled_gguf_path


def test_amx_is_read_from_the_cpu_flags(tmp_path: Path) -> None:
    amx = tmp_path / "amx"
    amx.write_text("processor\t: 0\nflags\t\t: fpu avx2 amx_bf16 amx_tile amx_int8 avx512f\n")
    plain = tmp_path / "plain"
    plain.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512f\n")
    assert cpu_has_amx(str(amx)) is True
    assert cpu_has_amx(str(plain)) is False
    assert cpu_has_amx(str(tmp_path / "missing")) is False


def test_a_prompt_batch_decodes_on_this_cpu_and_predicts_the_obvious_next_word() -> None:
    # On AMX CPUs llama.cpp's repacked kernels crash here, in the first multi-token decode; broken kernels
    # that decode without crashing would show up as a wrong greedy prediction.
    model = Model(str(bundled_gguf_path()))
    ctx = Context(model, ContextSpec(n_ctx_per_seq=256, n_seq=1, n_batch=64, n_thread=2))
    batch = Batch(64, 1)
    sampler = Sampler(model, {"temperature": 0.0})
    try:
        tokens = model.tokenize("The capital of France is", add_special=True)
        for pos, token in enumerate(tokens):
            batch.add(token, pos, 0, pos == len(tokens) - 1)
        ctx.decode(batch)
        assert model.piece(sampler.sample(ctx, len(tokens) - 1)) == b" Paris"
    finally:
        sampler.close()
        batch.close()
        ctx.close()
        model.close()


def test_flash_attention_is_off_unless_asked_for_or_needed() -> None:
    def spec(kv: str = "f16", flash: bool | None = None) -> ContextSpec:
        return ContextSpec(n_ctx_per_seq=256, n_seq=1, n_batch=64, n_thread=2, kv_cache_type=kv,
                           flash_attention=flash)

    assert _wants_flash_attention(spec()) is False
    assert _wants_flash_attention(spec("q8_0")) is True  # a quantized V cache needs it
    assert _wants_flash_attention(spec(flash=True)) is True
    assert _wants_flash_attention(spec("q4_0", flash=False)) is False
