"""The seven reward scorers' build options on the suite's tiny random models of the real classes (one place for the
device tests and bench/gpu_check.py)."""

import json
from pathlib import Path

import torch
from clip_testkit import save_clip_folder
from test_clip_aesthetic import published_head_state_dict


def tiny_scorer_options(root: Path) -> dict[str, dict]:
    """{scorer key: its build options}, the weights written under `root` (a CLIP folder shared by the CLIP-family
    scorers, the published aesthetic head layout, ImageReward and CLIP-FlanT5 converted from their original
    layouts)."""
    import test_image_reward as ir
    import test_vqa_score as vqa

    from mirokit.rewards.image_reward_model import convert_image_reward_checkpoint
    from mirokit.rewards.vqa_convert import convert_clip_t5_checkpoint

    root = Path(root)
    clip = save_clip_folder(root / "clip")
    head = root / "sac+logos+ava1-l14-linearMSE.pth"
    torch.save(published_head_state_dict(), head)
    (root / "ir").mkdir(parents=True, exist_ok=True)
    torch.save(ir.original_state_dict(), root / "ir" / "ImageReward.pt")
    (root / "ir" / "med_config.json").write_text(json.dumps(ir.MED))
    image_reward = convert_image_reward_checkpoint(root / "ir" / "ImageReward.pt", root / "ir_conv",
                                                   tokenizer=ir.make_tokenizer())
    model = vqa.tiny_model()
    vqa_folder = convert_clip_t5_checkpoint(vqa.their_layout(model, root / "vqa_theirs"), root / "vqa",
                                            tokenizer=vqa.make_tokenizer(),
                                            vision_config=model.vision_tower.config.to_dict())
    return {"clip_score": {"model": clip, "architecture": "clip"},
            "aesthetic_score": {"model": clip, "head": str(head)},
            "pick_a_score_score": {"model": clip}, "sciscore_score": {"model": clip}, "hpsv2_score": {"model": clip},
            "image_reward_score": {"model": str(image_reward)}, "vqa_score": {"model": str(vqa_folder)}}
