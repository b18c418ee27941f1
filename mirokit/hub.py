"""Upload a mirokit model folder to the Hugging Face hub: the one path behind `MiroPipeline.push_to_hub` and
`mirokit export ... --push-to-hub REPO` (docs/HUB.md).

The folder's model card is written again with the repo id in its quickstart, the repo is created if needed
(`HfApi.create_repo(exist_ok=True)`) and the folder goes up in one `HfApi.upload_folder` commit. Training state
(train_state/) and leftover temporary files stay home. A README.md on the hub that mirokit did not write is kept
(the local card is not uploaded over it). The token is `token`, else huggingface_hub's own (HF_TOKEN, then the
saved `hf auth login`); HF_ENDPOINT picks another hub. Every failure of the upload is one line naming the repo.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

from mirokit.atomic import SUFFIX
from mirokit.model_card import CARD_NAME, LIBRARY_NAME, check_repo_id, write_model_card

IGNORED = ["train_state/*", f"*{SUFFIX}"]
"""never uploaded: a checkpoint's training state, temporary files of interrupted writes"""


def push_folder(folder: str | Path, repo_id: str, *, private: bool | None = None, token: str | None = None,
                commit_message: str | None = None, revision: str | None = None, create_pr: bool = False,
                card: dict | None = None, label: str | None = None):
    """Upload the mirokit model folder `folder` to the hub model repo `repo_id` (OWNER/NAME) -> the commit's
    huggingface_hub.CommitInfo (`.commit_url`, `.pr_url` with create_pr).

    private: for a new repo (None: the hub's default; an existing repo keeps its visibility). token: a hub token
    (None: HF_TOKEN or the saved login). revision: the branch to commit to (default main). create_pr: open a pull
    request instead of committing to the branch. card: more write_model_card arguments (license, base_model,
    eval_results); the card is rewritten with `repo_id` first. label: what the error messages call the upload
    (default: the folder). A bad repo id, a folder that is not a model folder and any hub error (network, auth,
    offline mode) are one-line errors.
    """
    folder = Path(folder)
    check_repo_id(repo_id)
    if not (folder / "pipeline.json").is_file():
        raise FileNotFoundError(f"not a mirokit model folder: {folder} (missing pipeline.json); nothing pushed")
    write_model_card(folder, repo_id=repo_id, **(card or {}))
    message = commit_message or f"Upload mirokit model ({', '.join(_names(folder))})"
    try:
        from huggingface_hub import HfApi

        api = HfApi(token=token)
        api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        ignore = list(IGNORED)
        if (folder / CARD_NAME).is_file() and _hub_card_is_foreign(api, repo_id, None if create_pr else revision):
            warnings.warn(f"the hub repo {repo_id} has a README.md that mirokit did not write: kept, the local model "
                          "card was not uploaded", UserWarning, stacklevel=2)
            ignore.append(CARD_NAME)
        return api.upload_folder(repo_id=repo_id, folder_path=folder, repo_type="model", commit_message=message,
                                 revision=revision, create_pr=create_pr, ignore_patterns=ignore)
    except Exception as err:  # network, auth, offline mode and hub-side errors alike
        from mirokit.sources import one_line

        reason = re.sub(r"\s*For more information check: \S+", "", one_line(err, limit=1000))
        reason = reason if len(reason) <= 300 else reason[:297] + "..."
        raise RuntimeError(f"pushing {label or folder} to the hub repo {repo_id} failed: {reason}") from None


def _hub_card_is_foreign(api, repo_id: str, revision: str | None) -> bool:
    """True if the repo's README.md (at `revision`) exists and was not written by mirokit."""
    info = api.model_info(repo_id, revision=revision)
    if CARD_NAME not in {s.rfilename for s in info.siblings or []}:
        return False
    data = info.card_data
    return (data.to_dict() if data is not None else {}).get("library_name") != LIBRARY_NAME


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith(".") and p.name != "train_state")
