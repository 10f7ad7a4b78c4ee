"""Hypothesis strategies for architectures, shared by the space and network tests."""

from __future__ import annotations

from hypothesis import reject
from hypothesis import strategies as st

from space import ACTIVATIONS, Arch, Stage


@st.composite
def stages(draw: st.DrawFn, *, max_channels: int = 48, max_repeats: int = 2) -> Stage:
    return Stage(
        op=draw(st.sampled_from(["btn", "cse"])),
        c=draw(st.integers(1, max_channels)),
        n=draw(st.integers(1, max_repeats)),
        s=draw(st.sampled_from([1, 2])),
        t=draw(st.integers(1, 6)),
        r=draw(st.integers(1, 32)),
        cap=draw(st.integers(1, 16)),
    )


@st.composite
def archs(draw: st.DrawFn, *, max_stages: int = 7, fits: int | None = None, **stage_kw) -> Arch:
    """Valid architectures; with ``fits=N`` only those whose strides fit an NxN input."""
    rows = tuple(draw(st.lists(stages(**stage_kw), min_size=1, max_size=max_stages)))
    grouped = draw(st.booleans())
    head = rows[-1].c * draw(st.integers(1, 4)) if grouped else draw(st.integers(1, 128))
    arch = Arch(stages=rows, stem=draw(st.integers(1, 48)), head=head,
                head_op="grouped" if grouped else "dense",
                act=draw(st.sampled_from(ACTIVATIONS)))
    if fits is not None:
        try:
            arch.check_input_size(fits)
        except ValueError:
            reject()
    return arch
