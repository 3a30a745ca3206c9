"""The masked-prediction workflow through the CLI, from k-means targets to pretrained runs.

Cluster (iteration 1) → pretrain hubert → cluster the run's features (iteration 2) → pretrain
again; tokenizer → pretrain beats; data2vec 2.0 mode in the training loop; Wav2vec-C's codebook
logs in metrics.jsonl; user errors.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pocketear.cli import main
from pocketear.data.frame_targets import load_targets
from tests.conftest import write_tone

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")

TINY = ["--encoder", "kwt1", "--set", "encoder.depth=2", "--set", "optim.batch_size=4",
        "--set", "data.workers=1", "--set", "task.slice_frames=48", "--steps", "2",
        "--no-progress"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("masked")
    for i in range(6):
        write_tone(root / "audio" / f"t{i}.wav", 300 + 400 * i, seconds=1.0, seed=i)
    return root


def test_hubert_iterations_and_beats_tokenizer(corpus: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    audio, t1 = str(corpus / "audio"), corpus / "t1.npz"
    assert main(["cluster", "--data", audio, "--k", "8", "--out", str(t1), "--no-progress"]) == 0
    assert "k=8 mfcc targets" in capsys.readouterr().out
    assert load_targets(t1).kind == "mfcc"
    run1 = corpus / "run1"
    assert main(["pretrain", "--task", "hubert", "--data", audio, "--targets", str(t1),
                 "--out", str(run1), *TINY]) == 0
    t2 = corpus / "t2.npz"
    assert main(["cluster", str(run1), "--layer", "1", "--k", "8", "--out", str(t2),
                 "--no-progress"]) == 0
    lab = load_targets(t2)
    assert lab.kind == "model" and lab.layer == 1 and lab.k == 8
    assert main(["pretrain", "--task", "hubert", "--data", audio, "--targets", str(t2),
                 "--out", str(corpus / "run2"), *TINY]) == 0
    tok = corpus / "tok.npz"
    assert main(["tokenizer", str(run1), "--k", "16", "--out", str(tok), "--no-progress"]) == 0
    lab = load_targets(tok)
    assert lab.metric == "cosine" and lab.k == 16
    np.testing.assert_allclose(np.linalg.norm(lab.codebook.numpy(), axis=1), 1.0, atol=1e-5)
    assert main(["pretrain", "--task", "beats", "--data", audio, "--targets", str(tok),
                 "--out", str(corpus / "run3"), *TINY]) == 0


def test_data2vec_v2_in_the_training_loop(corpus: Path) -> None:
    run = corpus / "d2v"
    assert main(["pretrain", "--task", "data2vec", "--data", str(corpus / "audio"),
                 "--set", "task.mode=v2", "--set", "task.num_masks=2", "--out", str(run),
                 *TINY]) == 0
    import json

    final = json.loads((run / "summary.json").read_text())["final"]
    assert final["ema_decay"] > 0.999 and np.isfinite(final["loss"])


def test_wav2vec_c_logs_codebook_use_every_log_step(corpus: Path) -> None:
    import json

    run = corpus / "w2vc"
    assert main(["pretrain", "--task", "wav2vec_c", "--data", str(corpus / "audio"),
                 "--set", "train.log_every=2", "--out", str(run), *TINY, "--steps", "4"]) == 0
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == [2, 4]
    for x in lines:
        assert {"contrastive", "diversity", "consistency", "codebook_perplexity",
                "code_utilisation", "temperature"} <= set(x)
        assert 2 <= x["codebook_perplexity"] <= 640 and 0 < x["code_utilisation"] <= 1


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["cluster"], "give a RUN_DIR"),
        (["cluster", "{tmp}/nothing"], "nothing"),
        (["tokenizer", "{tmp}/nothing"], "nothing"),
        (["cluster", "--data", "{audio}", "--k", "100000", "--out", "{tmp}/t.npz"],
         "cannot make 100000 clusters"),
        (["pretrain", "--task", "hubert", "--data", "{audio}", "--set",
          "task.targets={tmp}/missing.npz", "--out", "{tmp}/r"], "pocketear cluster"),
    ],
    ids=["no-source", "no-run", "no-run-tokenizer", "k-too-large", "missing-targets"],
)
def test_user_errors(argv: list[str], message: str, corpus: Path, tmp_path: Path,
                     capsys: pytest.CaptureFixture[str]) -> None:
    args = [a.replace("{tmp}", str(tmp_path)).replace("{audio}", str(corpus / "audio"))
            for a in argv]
    rc = main([*args, "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and message in err and "Traceback" not in err
