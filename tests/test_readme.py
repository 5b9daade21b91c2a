"""The README's runnable examples run as written."""

import re

from tests_support import ROOT


def _python_block_after(heading: str) -> str:
    text = (ROOT / "README.md").read_text()
    after = text[text.index(heading) :]
    return re.search(r"```python\n(.*?)```", after, flags=re.DOTALL).group(1)


def test_the_judge_example_runs_on_image_and_video_files(tiny_qwen, tmp_path, monkeypatch, capsys):
    from unified_reward.judging.generative import Judge
    from unified_reward.synthetic.world import WorldConfig, make_record

    model, processor = tiny_qwen
    Judge(model, processor).save_pretrained(tmp_path / "judge")
    images = make_record(WorldConfig(seed=3), "test", "image_generation", "pair", 0).candidates
    (tmp_path / "a.png").write_bytes(images[0].data)  # records hold media as stored: encoded png / mp4 bytes
    (tmp_path / "b.png").write_bytes(images[1].data)
    video = make_record(WorldConfig(seed=3), "test", "video_understanding", "pair", 0).context
    (tmp_path / "clip.mp4").write_bytes(video.data)
    edit = make_record(WorldConfig(seed=3), "test", "image_editing", "pair", 0)
    for name, media in zip(("source", "edit_1", "edit_2"), (edit.context, *edit.candidates), strict=True):
        (tmp_path / f"{name}.png").write_bytes(media.data)

    code = _python_block_after("### Judge your own images and videos")
    assert 'JUDGE = "logs/reward_joint/runs/<time>/judge"' in code
    code = code.replace("logs/reward_joint/runs/<time>/judge", str(tmp_path / "judge"))
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md", "exec"), {})
    printed = capsys.readouterr().out
    numbers = [float(x) for x in re.findall(r"\d+\.\d+", printed)]
    assert len(numbers) == 5 and 0 <= numbers[0] <= 1 and 1 <= numbers[1] <= 5 and 0 <= numbers[2] <= 1
    assert 0 <= numbers[3] <= 1 and 1 <= numbers[4] <= 5  # the edit judgment
