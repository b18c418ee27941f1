"""VQAScore on a tiny random CLIP-T5: their layout -> converter -> scorer vs a by-hand probability."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

WORDS = ["<pad>", "</s>", "<unk>", "A", "chat", "between", "a", "curious", "user", "and", "an", "artificial",
         "intelligence", "assistant", ".", "The", "gives", "helpful", ",", "detailed", "polite", "answers", "to",
         "the", "'", "s", "questions", "USER", ":", "Does", "this", "figure", "show", '"', "?", "Please", "answer",
         "yes", "or", "no", "ASSISTANT", "Yes", "red", "circle", "blue", "square", "big", "green", "triangle", "on"]
T5_VOCAB = len(WORDS) + 6  # the model's vocabulary is larger than the tokenizer's, as 32128 vs 32100
CAPTIONS = ["a red circle", "the big blue square on a green triangle", "a", "green green green", "zebra"]


def make_tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    core.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=core, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")


def tiny_model(seed: int = 0):
    from transformers import CLIPVisionConfig, T5Config

    from mirokit.rewards.vqa_model import CLIPT5Config, CLIPT5ForVQAScore

    torch.manual_seed(seed)
    vision = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=4,
                              image_size=28, patch_size=14, projection_dim=16)
    t5 = T5Config(vocab_size=T5_VOCAB, d_model=24, d_kv=8, d_ff=48, num_layers=2, num_heads=3,
                  feed_forward_proj="gated-gelu", tie_word_embeddings=False, decoder_start_token_id=0,
                  pad_token_id=0, eos_token_id=1)
    model = CLIPT5ForVQAScore.from_configs(CLIPT5Config(), vision, t5).eval()
    lm = model.language_model
    lm.lm_head.weight = torch.nn.Parameter(torch.randn(T5_VOCAB, 24) * 0.3)  # untied, as in FlanT5
    return model


def their_layout(model, folder, with_vision: bool = True):
    """Write `model` as zhiqiulin/clip-flant5-* is published: clip_t5 config.json + 2 .bin shards + index."""
    cfg = {**model.language_model.config.to_dict(), "tie_word_embeddings": False, "model_type": "clip_t5",
           "architectures": ["CLIPT5ForConditionalGeneration"], "mm_vision_tower": "openai/tiny-clip",
           "mm_hidden_size": 32, "mm_projector_type": "mlp2x_gelu", "mm_vision_select_layer": -2,
           "mm_vision_select_feature": "patch", "use_mm_proj": True, "image_aspect_ratio": "pad"}
    lm = {k: v.clone() for k, v in model.language_model.state_dict().items()}
    lm["decoder.embed_tokens.weight"] = lm["shared.weight"]
    rest = {"mm_projector." + k: v.clone() for k, v in model.mm_projector.state_dict().items()}
    if with_vision:
        rest.update({"vision_tower.vision_tower.vision_model." + k: v.clone()
                     for k, v in model.vision_tower.state_dict().items()})
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(cfg))
    shards = {"pytorch_model-00001-of-00002.bin": rest, "pytorch_model-00002-of-00002.bin": lm}
    for name, sd in shards.items():
        torch.save(sd, folder / name)
    weight_map = {k: name for name, sd in shards.items() for k in sd}
    (folder / "pytorch_model.bin.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    return folder


def make_images():
    rng = np.random.default_rng(0)
    sizes, modes = [(28, 28), (40, 24), (24, 41), (33, 33), (20, 16)], ["RGB", "RGB", "RGBA", "L", "RGB"]
    return [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).convert(m)
            for (w, h), m in zip(sizes, modes)]


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    from safetensors.torch import save_file

    from mirokit.rewards.vqa_convert import convert_clip_t5_checkpoint

    root = tmp_path_factory.mktemp("vqa")
    model = tiny_model()
    vision_cfg = model.vision_tower.config.to_dict()
    src = their_layout(model, root / "theirs")
    out = convert_clip_t5_checkpoint(src, root / "ours", tokenizer=make_tokenizer(), vision_config=vision_cfg)
    # a checkpoint without tower weights + a CLIP folder as openai publishes it (vision_model.* keys)
    clip = root / "clip"
    clip.mkdir()
    (clip / "config.json").write_text(json.dumps({"model_type": "clip", "vision_config": vision_cfg}))
    save_file({"vision_model." + k: v.contiguous() for k, v in model.vision_tower.state_dict().items()}
              | {"text_model.dummy": torch.zeros(1)}, str(clip / "model.safetensors"))
    no_tower = their_layout(model, root / "theirs_no_tower", with_vision=False)
    out2 = convert_clip_t5_checkpoint(no_tower, root / "ours2", tokenizer=make_tokenizer(), vision_tower=clip)
    return {"model": model, "ours": out, "ours2": out2, "theirs": src}


def by_hand(model, tokenizer, image_tensor: torch.Tensor, caption: str) -> float:
    """One image, no padding: CLIP hidden state -2 without CLS -> Linear, GELU, Linear -> spliced between
    the two prompt chunks -> T5 logits -> exp(mean log p(Yes, </s>)) over the tokenizer's vocabulary."""
    from mirokit.rewards.vqa_model import SYSTEM_MSG

    hs = model.vision_tower(pixel_values=image_tensor[None], output_hidden_states=True).hidden_states[-2][:, 1:]
    p = model.mm_projector
    feats = p[2](torch.nn.functional.gelu(p[0](hs)))[0]
    question = f'Does this figure show "{caption}"? Please answer yes or no.'
    ids0 = tokenizer(SYSTEM_MSG + " USER: ").input_ids
    ids1 = tokenizer("\n" + question + " ASSISTANT: ").input_ids
    assert ids0[-1] == 1 and ids1[-1] == 1  # each chunk ends with its own </s>
    emb = model.language_model.get_input_embeddings()
    embeds = torch.cat([emb(torch.tensor(ids0)), feats, emb(torch.tensor(ids1))])[None]
    yes = tokenizer("Yes").input_ids
    assert yes == [WORDS.index("Yes"), 1]
    logits = model.language_model(inputs_embeds=embeds, decoder_input_ids=torch.tensor([[0] + yes[:-1]])).logits
    logp = logits[0, :, :len(WORDS)].log_softmax(-1)
    return float(torch.exp((logp[0, yes[0]] + logp[1, yes[1]]) / 2))


def test_converted_scores_match_by_hand(folders):
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    from mirokit.rewards import build_scorer
    from mirokit.rewards.vqa_model import CLIP_MEAN, CLIP_STD
    from mirokit.rewards.vqa_score import expand2square, preprocess_clip_t5

    scorer = build_scorer("vqa_score", model=str(folders["ours"]), batch_size=4)
    images = make_images()
    scores = scorer.score(images, CAPTIONS)
    assert scores.shape == (5,) and scores.dtype == np.float32
    assert ((scores > 0) & (scores <= 1)).all() and scores.std() > 1e-4
    pixels = preprocess_clip_t5(images, 28, CLIP_MEAN, CLIP_STD)
    processor = CLIPImageProcessorPil(size={"shortest_edge": 28}, crop_size={"height": 28, "width": 28},
                                      image_mean=list(CLIP_MEAN), image_std=list(CLIP_STD))
    squares = [expand2square(im.convert("RGB"), (122, 116, 104)) for im in images]
    np.testing.assert_allclose(pixels.numpy(), processor(squares, return_tensors="pt").pixel_values.numpy(), atol=1e-5)
    tok = make_tokenizer()
    with torch.no_grad():
        expected = [by_hand(folders["model"], tok, pixels[i], c) for i, c in enumerate(CAPTIONS)]
    np.testing.assert_allclose(scores, expected, rtol=1e-5, atol=1e-6)


def test_batch_invariance_determinism_and_tower_from_clip_folder(folders):
    from mirokit.rewards import build_scorer

    images = make_images()
    one = build_scorer("vqa_score", model=str(folders["ours"]), batch_size=1).score(images, CAPTIONS)
    four = build_scorer("vqa_score", model=str(folders["ours"]), batch_size=4)
    np.testing.assert_allclose(four.score(images, CAPTIONS), one, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(four.score(images, CAPTIONS), four.score(images, CAPTIONS))
    other = build_scorer("vqa_score", model=str(folders["ours2"]), batch_size=4).score(images, CAPTIONS)
    np.testing.assert_allclose(other, one, rtol=1e-5, atol=1e-6)


def test_inputs_follow_t2v_metrics_layout():
    from mirokit.rewards.vqa_model import CLIPT5Config
    from mirokit.rewards.vqa_score import build_vqa_inputs

    tok = make_tokenizer()
    batch = build_vqa_inputs(tok, ["a red circle", "a"], CLIPT5Config())
    ids, mask, labels = batch["input_ids"], batch["attention_mask"], batch["labels"]
    n0 = len(tok(CLIPT5Config().system_message + " USER: ").input_ids)
    assert (ids[:, n0] == -200).all() and (ids[:, n0 - 1] == 1).all()
    assert mask[0].all() and not mask[1].all() and (ids[1][~mask[1]] == 0).all()  # right padding
    assert labels.tolist() == [[WORDS.index("Yes"), 1]] * 2


def test_their_layout_and_bad_inputs_one_line_errors(folders, tmp_path):
    from mirokit.rewards import build_scorer
    from mirokit.rewards.vqa_convert import convert_clip_t5_checkpoint

    with pytest.raises(ValueError, match="vqa_convert"):
        build_scorer("vqa_score", model=str(folders["theirs"])).load()
    with pytest.raises(ValueError, match="hub id"):
        build_scorer("vqa_score").load()
    with pytest.raises(FileNotFoundError, match="vqa_score"):
        build_scorer("vqa_score", model=str(tmp_path / "missing"))
    scorer = build_scorer("vqa_score", model=str(folders["ours"]))
    with pytest.raises(TypeError, match="caption 1"):
        scorer.score(make_images()[:2], ["a", None])
    with pytest.raises(TypeError, match="image 0"):
        scorer.score(["not an image"], ["a"])
    with pytest.raises(ValueError, match="vision tower"):
        convert_clip_t5_checkpoint(folders["theirs"], tmp_path / "x")  # tiny tower: no built-in config
