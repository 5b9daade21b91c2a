"""An offline byte-level BPE tokenizer for tiny models, trained on the project's own texts.

Real checkpoints bring their own tokenizer (`AutoTokenizer.from_pretrained`). Tiny models used by
the embedded default and the tests need one that exists without downloads: this one is trained
deterministically in well under a second on the judge templates and a domain's texts and words (a
`TinyVocabulary`, such as `unified_reward.synthetic.vocabulary.world_vocabulary()`), splits digits one
by one (as Qwen's tokenizer does, so scores read the same way), and carries the special tokens of
Qwen2-VL and LLaVA-OneVision and a ChatML template of the same form as theirs.
"""

from __future__ import annotations

from dataclasses import dataclass

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from unified_reward.models.families import family_spec

SPECIAL_TOKENS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
    "<image>",
    "<video>",
)


def chat_template(family: str) -> str:
    """A ChatML template (`<|im_start|>role ... <|im_end|>`) with the family's media placeholders."""
    image, video = family_spec(family).media_in_chat
    return (
        "{% for message in messages %}"
        "<|im_start|>{{ message['role'] }}\n"
        "{% if message['content'] is string %}{{ message['content'] }}"
        "{% else %}{% for part in message['content'] %}"
        f"{{% if part['type'] == 'image' %}}{image}"
        f"{{% elif part['type'] == 'video' %}}{video}"
        "{% else %}{{ part['text'] }}{% endif %}"
        "{% endfor %}{% endif %}"
        "<|im_end|>\n"
        "{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )


@dataclass(frozen=True)
class TinyVocabulary:
    """A domain's texts (questions, captions) and words the tiny tokenizer learns beside the judge templates; every
    word is seen often enough, first and after a space, to become one token."""

    texts: tuple[str, ...] = ()
    words: tuple[str, ...] = ()


def _corpus(vocabulary: TinyVocabulary) -> list[str]:
    from unified_reward.data.schema import MODES, stream_name
    from unified_reward.data.tasks import PAPER_TASKS, task_spec
    from unified_reward.prompts.templates import DEFAULT_TEMPLATES, pair_answer_wordings

    # the paper's tasks only: changing the corpus changes the vocabulary, and the shipped base must match it (a later
    # task's templates are byte-level pieces of the same vocabulary)
    texts = [DEFAULT_TEMPLATES[stream_name(t, m)].instruction for t in PAPER_TASKS for m in MODES]
    # every verdict wording, ties included: the understanding templates offer no tie, but the shipped base's
    # tokenizer was trained on one
    texts += [w for t in PAPER_TASKS for w in pair_answer_wordings(task_spec(t).candidate_unit).values()]
    texts += list(vocabulary.texts)
    words = list(vocabulary.words) + ["There", "is", "are", "They", "objects", "object", "moving", "shows"]
    words += ["image", "video", "Image", "Video", "Answer", "better", "equally", "good", "Both"]
    # the reasoning judge's checks and the base's skills (describe, verify)
    words += ["yes", "no", "Yes", "No", "The", "Describe", "both", "images", "videos", "Are", "Do", "move", "the"]
    # every word both first and after a space, often enough that BPE merges each into one token: a colour
    # split into pieces (" re" + "d") is a harder word for a tiny model to tie to what it sees
    texts += [" ".join(words), " " + " ".join(words), " ".join(w.capitalize() for w in words)] * 8
    texts += [f"Final Score: {i}" for i in range(11)] + ["Final Score: 3.5", "0123456789 . , : ; ! ? ' \" ( ) - /"]
    texts += [f"{k}/{n}." for n in range(1, 5) for k in range(n + 1)]
    texts += ["user", "assistant", "system", "\n"]
    return texts


def build_tiny_tokenizer(
    vocab_size: int = 1024, family: str = "qwen2_vl", vocabulary: TinyVocabulary | None = None
) -> PreTrainedTokenizerFast:
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(_corpus(vocabulary or TinyVocabulary()), trainer=trainer)
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        padding_side="right",
        additional_special_tokens=list(SPECIAL_TOKENS[1:]),
    )
    wrapped.chat_template = chat_template(family)
    return wrapped
