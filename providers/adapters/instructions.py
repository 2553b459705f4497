"""Edit operations said in words, for instruction-following image models (OpenAI-style `images/edits`
with a GPT-image model, FLUX Kontext on Replicate and fal).

Such a model takes one instruction and the picture; it has no endpoint per operation, so the operations it
can do are the ones a sentence describes well. The sentences are English: these models follow English best.
"""

from __future__ import annotations

from providers.types import EditOp, GenerationRequest

# What an instruction-following model does well: anything said in words, a swap, a masked repaint.
INSTRUCTION_OPS = frozenset({EditOp.INSTRUCT, EditOp.SEARCH_REPLACE, EditOp.INPAINT})


def instruction(request: GenerationRequest) -> str:
    """The instruction that asks for `request`'s edit."""
    prompt = request.prompt.strip()
    op = request.edit_op
    if op is EditOp.SEARCH_REPLACE:
        search = request.search_prompt or str(request.options.get("search_prompt") or "")
        return f"Replace {search.strip()} with {prompt}. Keep everything else unchanged."
    if op is EditOp.REMOVE_BACKGROUND:
        return "Remove the background completely; keep the main subject exactly as it is."
    return prompt


def is_kontext(model: str) -> bool:
    """A FLUX Kontext model (black-forest-labs/flux-kontext-pro on Replicate, fal-ai/flux-pro/kontext, ...)."""
    return "kontext" in model.lower()
