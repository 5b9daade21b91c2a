"""Scalar-head reward models behind our judge interface, on tiny random models of each kind: the reward is the head
applied to the VLM's last hidden state at the right token (computed here by hand), a pair is sigmoid(r1 - r2),
a saved judge loads back with its head from the released layouts, and evaluate.py and the server take it."""

import json
import math

import pytest
import torch
from safetensors.torch import save_file

from serving_support import image
from unified_reward.encoding.chat import pad_batch
from unified_reward.errors import UserError
from unified_reward.judging.queries import JudgeQuery
from unified_reward.judging.scalar import SPECS, ScalarJudge, ScalarRewardModel, add_reward_token
from unified_reward.models.builders import build_vlm
from unified_reward.models.processor import build_processor
from unified_reward.serving.requests import Limits, answer, parse_request
from unified_reward.synthetic.vocabulary import world_vocabulary

KINDS = {"hpsv3": "qwen2_vl", "skywork_vl_reward": "qwen2_5_vl", "edit_reward": "qwen2_5_vl"}


def tiny(kind: str) -> ScalarJudge:
    torch.manual_seed(0)
    family = KINDS[kind]
    processor = build_processor(family, min_pixels=3136, max_pixels=3136, tiny_vocabulary=world_vocabulary())
    vlm = build_vlm(family, processor, tiny={"hidden_size": 64, "num_hidden_layers": 2})
    if SPECS[kind].reward_token:
        add_reward_token(vlm, processor)
    return ScalarJudge(ScalarRewardModel(vlm, SPECS[kind]).eval(), processor, batch_size=2)


def by_hand(judge: ScalarJudge, task: str, prompt: str, candidate, context) -> float:
    """The head written out: the last layer's hidden state at the reward token (or the last token), then the
    head's layers as plain matrix products; the mean (first output) of each head, averaged over the heads."""
    values = []
    for head in range(judge.spec.heads):
        encoded = judge._encode(task, prompt, candidate, context, head)
        ids = torch.tensor([encoded.input_ids])
        inputs = {k: v for k, v in pad_batch([encoded], judge.processor).items() if k != "labels"}
        hidden = judge.model.vlm(**inputs, output_hidden_states=True).hidden_states[-1][0]
        token = judge.reward_token_id
        position = int((ids[0] == token).nonzero()[0, 0]) if token is not None else ids.shape[1] - 1
        x = hidden[position]
        module = judge.model.head_module(head)
        if judge.spec.head == "value":
            values.append(float(module.summary.weight[0] @ x + module.summary.bias[0]))
        else:
            first, second, third = module[0], module[3], module[5]
            x = torch.relu(first.weight @ x + first.bias)
            x = torch.relu(second.weight @ x + second.bias)
            values.append(float((third.weight @ x + third.bias)[0]))
    return sum(values) / len(values)


@pytest.mark.parametrize("kind", list(KINDS))
def test_the_reward_is_the_head_at_its_token_and_a_pair_is_bradley_terry(kind):
    judge = tiny(kind)
    images = [image(0), image(1)]
    with torch.no_grad():
        wanted = [by_hand(judge, "image_generation", "two red circles", m, None) for m in images]
        answer_reward = by_hand(judge, "image_understanding", "What colour?", "red", images[0])
    points = judge.judge([JudgeQuery("image_generation", "point", "two red circles", (m,)) for m in images])
    assert [j.expected_score for j in points] == pytest.approx(wanted, abs=1e-5)
    pair, swapped = judge.judge(
        [
            JudgeQuery("image_generation", "pair", "two red circles", tuple(images)),
            JudgeQuery("image_generation", "pair", "two red circles", tuple(images[::-1])),
        ]
    )
    assert pair.probabilities["first"] == pytest.approx(1 / (1 + math.exp(wanted[1] - wanted[0])), abs=1e-5)
    assert pair.probabilities["first"] == pytest.approx(swapped.probabilities["second"], abs=1e-6)
    assert pair.probabilities["tie"] == 0.0
    understanding = judge.judge([JudgeQuery("image_understanding", "point", "What colour?", ("red",), images[0])])
    assert understanding[0].expected_score == pytest.approx(answer_reward, abs=1e-5)


@pytest.mark.parametrize("kind", list(KINDS))
def test_a_saved_judge_loads_back_through_load_judge(kind, tmp_path):
    from unified_reward.judging.loading import load_judge

    judge = tiny(kind)
    judge.save_pretrained(tmp_path / "judge")
    loaded = load_judge(str(tmp_path / "judge"))
    assert isinstance(loaded, ScalarJudge) and loaded.spec == judge.spec
    query = JudgeQuery("image_generation", "point", "two red circles", (image(0),))
    assert loaded.judge([query])[0].expected_score == pytest.approx(judge.judge([query])[0].expected_score, abs=1e-5)


def test_skyworks_value_head_file_is_read_and_missing_head_weights_are_named(tmp_path):
    """Skywork-VL-Reward ships its head in value_head.safetensors (trl's names, v_head.summary.*) beside the VLM."""
    judge = tiny("skywork_vl_reward")
    folder = tmp_path / "skywork"
    judge.save_pretrained(folder)
    heads = {k: v for k, v in judge.model.state_dict().items() if k.startswith("v_head.")}
    (folder / "head.safetensors").unlink()
    save_file(heads, str(folder / "value_head.safetensors"))
    info = json.loads((folder / "scalar_judge.json").read_text())
    (folder / "scalar_judge.json").write_text(json.dumps({"kind": "skywork_vl_reward", "family": info["family"]}))
    loaded = ScalarJudge.from_pretrained(folder)
    query = JudgeQuery("image_understanding", "point", "What colour?", ("red",), image(3))
    assert loaded.judge([query])[0].expected_score == pytest.approx(judge.judge([query])[0].expected_score, abs=1e-5)
    (folder / "value_head.safetensors").unlink()
    with pytest.raises(UserError, match="the head's weights are not all there: missing \\['v_head.summary.bias'"):
        ScalarJudge.from_pretrained(folder)


def test_the_server_takes_a_scalar_judge():
    from unified_reward.serving.client import media_data_url

    judge = tiny("hpsv3")
    body = {
        "op": "group_rewards",
        "task": "image_generation",
        "prompt": "a red star",
        "candidates": [media_data_url(image(i)) for i in range(3)],
    }
    result = answer(judge, [parse_request(body, Limits())])[0]
    points = [JudgeQuery("image_generation", "point", "a red star", (image(i),)) for i in range(3)]
    assert result["scores"] == pytest.approx([j.expected_score for j in judge.judge(points)], abs=1e-5)
    assert sum(result["expected_win_rates"]) == pytest.approx(1.5)  # 3 pairs, no ties: each pair gives 1 in all
