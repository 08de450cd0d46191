"""FER+'s votes joined to FER2013's faces by thumbnail, as the GPU recipe's training set needs them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

from tests.conftest import REPO
from tests.training.faces import write_pair


def test_each_face_gets_the_votes_of_its_twin(tmp_path: Path) -> None:
    ferplus, fer2013 = write_pair(tmp_path, "train", 60, seed=3)
    with np.load(fer2013) as data:
        images, labels = data["images"], data["labels"]
    # Two faces FER+ does not have: they get no votes.
    extra = np.random.default_rng(4).integers(0, 256, size=(2, 48, 48), dtype=np.uint8)
    np.savez(fer2013, images=np.concatenate([images, extra]), labels=np.concatenate([labels, [0, 1]]))
    out = tmp_path / "joined.npz"
    done = subprocess.run(
        [sys.executable, str(REPO / "training" / "ferplus_join.py"), str(fer2013), str(ferplus), str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "60 of 62 FER2013 faces have FER+ votes" in done.stdout

    with np.load(out) as joined, np.load(ferplus) as plus:
        assert np.array_equal(joined["images"][:60], images) and list(joined["labels"][60:]) == [0, 1]
        assert list(joined["vote_classes"]) == list(plus["vote_classes"])
        votes = joined["ferplus_votes"]
        assert not votes[60:].any()
        # Each FER2013 face's votes are those of the FER+ face it is a nudged copy of.
        for index in range(60):
            twin = int(np.abs(plus["images"].astype(int) - images[index]).max(axis=(1, 2)).argmin())
            assert np.array_equal(votes[index], plus["votes"][twin])
