import numpy as np
import pytest

from cft.output_space import build_output_space
from cft.prompts import ChatOptions, prompt_token_ids, render_chat
from cft.splits import make_prompt
from cft.trie import build_trie, trie_from_tokens


def _random_space(rng, vocab=12, eos=0):
    n = int(rng.integers(1, 40))
    seqs = set()
    while len(seqs) < n:
        seqs.add(tuple(int(t) for t in rng.integers(1, vocab, size=int(rng.integers(1, 6)))))
    seqs = sorted(seqs)
    probs = rng.dirichlet(np.ones(n) * 0.5)
    return seqs, probs


@pytest.mark.parametrize("seed", range(25))
def test_random_trie_paths_reproduce_value_probabilities(seed):
    rng = np.random.default_rng(seed)
    seqs, probs = _random_space(rng)
    trie = trie_from_tokens(seqs, probs, eos_id=0)
    ids, qs, mask = trie.path_targets(np.arange(len(seqs)))
    # every real target is a distribution
    np.testing.assert_allclose(qs.sum(-1)[mask], 1.0, atol=1e-12)
    assert (qs[~mask] == 0).all()
    for i, seq in enumerate(seqs):
        full = seq + (0,)
        assert mask[i].sum() == len(full)
        picked = [qs[i, j][ids[i, j] == tok].sum() for j, tok in enumerate(full)]
        assert np.prod(picked) == pytest.approx(probs[i], rel=1e-9, abs=1e-15)
        assert trie.path_probability(i) == pytest.approx(probs[i], rel=1e-9, abs=1e-15)


def test_eos_competes_where_a_value_is_a_prefix_of_another():
    trie = trie_from_tokens([(5,), (5, 6)], np.array([0.25, 0.75]), eos_id=0)
    ids, qs, mask = trie.path_targets([1])
    second = dict(zip(ids[0, 1].tolist(), qs[0, 1].tolist()))
    assert second[0] == pytest.approx(0.25) and second[6] == pytest.approx(0.75)


def test_real_tokenizer_trie(tiny_tokenizer):
    space = build_output_space(make_prompt("binomial", {"n": 20.0, "p": 0.5}))
    trie = build_trie(space, tiny_tokenizer)
    # "1" is a strict prefix of "10".."19" in this tokenizer? values tokenize in digit pairs
    for i, v in enumerate(space.values):
        assert tiny_tokenizer.decode(list(trie.value_tokens[i])) == v
        assert trie.path_probability(i) == pytest.approx(space.probs[i], rel=1e-9)
        # the tiny chat template ends a turn with <|end|>, so values end with it rather than EOS </s>
        assert trie.sequence(i)[-1] == tiny_tokenizer.convert_tokens_to_ids("<|end|>")
    raw = build_trie(space, tiny_tokenizer, end_id=tiny_tokenizer.eos_token_id)
    assert all(raw.sequence(i)[-1] == tiny_tokenizer.eos_token_id for i in range(len(space)))


def test_values_that_contain_eos_are_rejected():
    with pytest.raises(ValueError, match="containing EOS"):
        trie_from_tokens([(1, 0)], np.array([1.0]), eos_id=0)


def test_chat_prompt_has_a_single_bos(tiny_tokenizer):
    text = make_prompt("gaussian", {"mu": 0, "sigma": 1}).text
    rendered = render_chat(tiny_tokenizer, text)
    assert rendered.startswith("<s><|user|>") and rendered.endswith("<|assistant|>")
    ids = prompt_token_ids(tiny_tokenizer, text)
    assert ids.count(tiny_tokenizer.bos_token_id) == 1 and ids[0] == tiny_tokenizer.bos_token_id
    naive = tiny_tokenizer(rendered, add_special_tokens=True)["input_ids"]
    assert naive.count(tiny_tokenizer.bos_token_id) >= 1  # what we avoid doubling


def test_raw_prompt_without_chat_template(tiny_tokenizer):
    ids = prompt_token_ids(tiny_tokenizer, "hello", ChatOptions(use_chat_template=False))
    assert tiny_tokenizer.decode(ids, skip_special_tokens=True) == "hello"
