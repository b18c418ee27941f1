"""A tiny randomly initialised LLaVA (CLIP vision tower + Llama language model) with a word-level tokenizer that
has an <image> token and a small chat template, saved so that AutoProcessor / AutoModelForImageTextToText load it."""

from pathlib import Path

import torch

WORDS = ("a photo of red green blue circle square star two three and left right the image caption it is in "
         "detailed succinct write describe this one short sentence here alt-text which may be wrong or "
         "incomplete : . ,").split()
TEMPLATE = ("{% for m in messages %}{% if m['role'] == 'user' %}USER: {% for c in m['content'] %}"
            "{% if c['type'] == 'image' %}<image> {% else %}{{ c['text'] }}{% endif %}{% endfor %} {% endif %}"
            "{% endfor %}{% if add_generation_prompt %}ASSISTANT:{% endif %}")


TEXT_TEMPLATE = ("{% for m in messages %}{% if m['role'] == 'user' %}USER: {{ m['content'] }} {% endif %}"
                 "{% endfor %}{% if add_generation_prompt %}ASSISTANT:{% endif %}")


def _tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "<s>", "</s>", "<unk>", "<image>", "USER:", "ASSISTANT:"]
    vocab = {w: i for i, w in enumerate(specials + WORDS)}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>", bos_token="<s>",
                                        eos_token="</s>", unk_token="<unk>",
                                        extra_special_tokens={"image_token": "<image>"})
    return tokenizer, vocab


def _llama_config(vocab: dict, hidden: int = 32, layers: int = 2):
    from transformers import LlamaConfig

    return LlamaConfig(vocab_size=len(vocab), hidden_size=hidden, intermediate_size=2 * hidden,
                       num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=4,
                       max_position_embeddings=256, pad_token_id=0, bos_token_id=1, eos_token_id=2)


def save_tiny_llama(folder: Path, seed: int = 0) -> Path:
    """A tiny random text-only Llama (a shortening model) with the same word-level tokenizer and a chat template."""
    from transformers import LlamaForCausalLM

    tokenizer, vocab = _tokenizer()
    tokenizer.chat_template = TEXT_TEMPLATE
    torch.manual_seed(seed)
    model = LlamaForCausalLM(_llama_config(vocab)).eval()
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def save_tiny_llava(folder: Path, seed: int = 0, hidden: int = 32, layers: int = 2) -> Path:
    """hidden / layers: the language model's width and depth (the benchmark makes generation cost more)."""
    from transformers import (
        CLIPImageProcessor,
        CLIPVisionConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )

    tokenizer, vocab = _tokenizer()
    image_processor = CLIPImageProcessor(size={"shortest_edge": 28}, crop_size={"height": 28, "width": 28})
    processor = LlavaProcessor(image_processor=image_processor, tokenizer=tokenizer, patch_size=14,
                               vision_feature_select_strategy="default", chat_template=TEMPLATE,
                               num_additional_image_tokens=1)
    torch.manual_seed(seed)
    config = LlavaConfig(
        vision_config=CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                                       image_size=28, patch_size=14, projection_dim=32),
        text_config=_llama_config(vocab, hidden, layers),
        image_token_index=vocab["<image>"], vision_feature_select_strategy="default", vision_feature_layer=-1)
    model = LlavaForConditionalGeneration(config).eval()
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder
