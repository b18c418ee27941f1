"""Tiny CLIP-family fixtures for the reward tests: a real CLIPTokenizer (tiny BPE vocabulary), a random
CLIPModel and a PIL CLIPImageProcessor, saved in the published hub layout. No downloads."""

import numpy as np
import torch

WORDS = ["a", "photo", "of", "big", "small", "red", "green", "blue", "circle", "square", "triangle", "cell", "atom"]
CAPTIONS = ["a red circle", "a big green square", "a photo of a small blue triangle", "an atom",
            "a cell", "red red red", "a blue circle", "a small square"]


def clip_tokenizer():
    """A CLIPTokenizer (byte-level BPE, "</w>" word ends) over the letters of WORDS; bos/eos are the last ids."""
    from transformers import CLIPTokenizer

    letters = sorted(set("".join(WORDS) + "n"))
    vocab = {c: i for i, c in enumerate(letters)}
    vocab.update({c + "</w>": len(letters) + i for i, c in enumerate(letters)})
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=[])


def clip_config(vocab_size: int, width: int = 32, heads: int = 4, image_size: int = 32, patch: int = 8,
                act: str = "gelu", projection_dim: int = 16):
    from transformers import CLIPConfig

    text = dict(vocab_size=vocab_size, hidden_size=width, intermediate_size=2 * width, num_hidden_layers=2,
                num_attention_heads=heads, max_position_embeddings=77, hidden_act=act,
                bos_token_id=vocab_size - 2, eos_token_id=vocab_size - 1, pad_token_id=vocab_size - 1)
    vision = dict(hidden_size=width, intermediate_size=2 * width, num_hidden_layers=2, num_attention_heads=heads,
                  image_size=image_size, patch_size=patch, hidden_act=act)
    return CLIPConfig(text_config=text, vision_config=vision, projection_dim=projection_dim,
                      logit_scale_init_value=2.6592)


def image_processor(size: int = 32):
    from transformers import CLIPImageProcessorPil

    return CLIPImageProcessorPil(size={"shortest_edge": size}, crop_size={"height": size, "width": size})


def tiny_clip_model(seed: int = 0, **config):
    from transformers import CLIPModel

    torch.manual_seed(seed)
    model = CLIPModel(clip_config(len(clip_tokenizer()), **config)).eval()
    with torch.no_grad():
        model.logit_scale.fill_(3.2)
    return model


def save_clip_folder(directory, model=None, processor: bool = True, seed: int = 0):
    """Save model (+ tokenizer and image processor) like a hub CLIP checkpoint; returns the folder as str."""
    model = model if model is not None else tiny_clip_model(seed)
    model.save_pretrained(str(directory))
    if processor:
        clip_tokenizer().save_pretrained(str(directory))
        image_processor(model.config.vision_config.image_size).save_pretrained(str(directory))
    return str(directory)


def images(n: int = 8, seed: int = 0):
    """n random RGB PIL images of mixed sizes (square and not, small and large)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    sizes = [(48, 48), (40, 64), (64, 40), (32, 32), (100, 60), (37, 53), (80, 80), (50, 34)]
    return [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for w, h in
            (sizes[i % len(sizes)] for i in range(n))]


def reference_cosine(model, pixel_values, captions):
    """Direct transformers computation: CLIPModel forward's normalised embeds -> per-pair cosine (N,)."""
    tok = clip_tokenizer()(captions, padding="max_length", truncation=True, max_length=77, return_tensors="pt")
    with torch.no_grad():
        out = model(input_ids=tok["input_ids"], attention_mask=tok["attention_mask"], pixel_values=pixel_values)
    return (out.image_embeds * out.text_embeds).sum(-1)


def reference_pixels(model, pil_images):
    processor = image_processor(model.config.vision_config.image_size)
    return processor(images=pil_images, return_tensors="pt")["pixel_values"]


def check_scorer_basics(scorer, n: int = 8):
    """Shape/dtype, determinism and batch invariance (batch_size 1 vs 4 vs all); returns the scores."""
    imgs, caps = images(n), CAPTIONS[:n]
    a = scorer.score(imgs, caps)
    assert a.shape == (n,) and a.dtype == np.float32 and np.isfinite(a).all()
    np.testing.assert_array_equal(a, scorer.score(imgs, caps))
    for bs in (1, 4):
        scorer.batch_size = bs
        np.testing.assert_allclose(scorer.score(imgs, caps), a, rtol=1e-5, atol=1e-5)
    # an image's score does not depend on its neighbours
    np.testing.assert_allclose(scorer.score(imgs[2:3], caps[2:3]), a[2:3], rtol=1e-5, atol=1e-5)
    scorer.batch_size = 32
    return a
