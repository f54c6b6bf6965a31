"""What is trained, token by token, with SmolLM2's tokenizer and its own chat template: -100 on system and user
turns and prompts, every assistant turn trained with its end-of-turn token (<|im_end|>, id 2), the newline after
it not. The expected ids were read off the tokenizer once and are written out here, so a change in how turns
are found shows up as a changed list."""

import re

import pytest

from loram_core.data.encode import IGNORE, Encoder, truncate
from loram_core.data.formats import Fields, convert, detect

X = IGNORE
SYSTEM_DEFAULT = [1, 9690, 198, 2683, 359, 253, 5356, 5646, 11173, 3365, 3511, 308, 34519, 28, 7018, 411, 407, 19712,
                  8182, 2, 198]  # the template's own system turn, added when a chat has none

MULTI_TURN = {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                           {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "Bye"},
                           {"role": "assistant", "content": "Bye."}]}
MULTI_TURN_IDS = [1, 9690, 198, 6077, 5453, 30, 2, 198, 1, 4093, 198, 26843, 2, 198, 1, 520, 9531, 198, 19556, 17, 2,
                  198, 1, 4093, 198, 3087, 85, 2, 198, 1, 520, 9531, 198, 3087, 85, 30, 2, 198]
MULTI_TURN_LABELS = [X] * 18 + [19556, 17, 2] + [X] * 12 + [3087, 85, 30, 2] + [X]


def encode(tokenizer, record, fields=Fields(), train_on_inputs=False):
    fmt = detect(record, fields, "test")
    return fmt, Encoder(tokenizer, tokenizer.chat_template, train_on_inputs)(convert(record, fmt, fields, "test", 0))


def test_a_multi_turn_chat_trains_every_assistant_turn_and_nothing_else(smollm2_tokenizer):
    fmt, example = encode(smollm2_tokenizer, MULTI_TURN)
    assert fmt == "messages"
    assert list(example.input_ids) == MULTI_TURN_IDS
    assert list(example.labels) == MULTI_TURN_LABELS
    trained = [i for i, label in zip(example.input_ids, example.labels) if label != X]
    assert smollm2_tokenizer.decode(trained) == "Hello!<|im_end|>Bye.<|im_end|>"


def test_train_on_inputs_trains_every_token(smollm2_tokenizer):
    _, example = encode(smollm2_tokenizer, MULTI_TURN, train_on_inputs=True)
    assert list(example.labels) == MULTI_TURN_IDS


def test_plain_prompt_completion_trains_the_completion_and_eos(smollm2_tokenizer):
    fmt, example = encode(smollm2_tokenizer, {"prompt": "2+2=", "completion": " 4"})
    assert fmt == "prompt_completion"
    assert list(example.input_ids) == [34, 27, 34, 45, 216, 36, 2]  # no template: "2+2=" " 4" eos
    assert list(example.labels) == [X, X, X, X, 216, 36, 2]


def test_conversational_prompt_completion_trains_the_completion_turns_only(smollm2_tokenizer):
    record = {"prompt": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"},
                         {"role": "user", "content": "Bye"}],
              "completion": [{"role": "assistant", "content": "Bye."}]}
    fmt, example = encode(smollm2_tokenizer, record)
    assert fmt == "prompt_completion"
    assert list(example.input_ids) == SYSTEM_DEFAULT + MULTI_TURN_IDS[8:]
    # the prompt's assistant turn is context, not trained
    assert list(example.labels) == [X] * (len(SYSTEM_DEFAULT) + 25) + [3087, 85, 30, 2] + [X]


def test_alpaca_puts_instruction_and_input_in_the_user_turn(smollm2_tokenizer):
    fmt, example = encode(smollm2_tokenizer, {"instruction": "Add.", "input": "2 and 2", "output": "4"})
    assert fmt == "alpaca"
    assert list(example.input_ids) == SYSTEM_DEFAULT + [1, 4093, 198, 7684, 30, 198, 198, 34, 284, 216, 34, 2, 198,
                                                        1, 520, 9531, 198, 36, 2, 198]
    assert list(example.labels) == [X] * (len(SYSTEM_DEFAULT) + 17) + [36, 2, X]


def test_sharegpt_maps_human_and_gpt(smollm2_tokenizer):
    record = {"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello!"}]}
    fmt, example = encode(smollm2_tokenizer, record)
    assert fmt == "sharegpt"
    assert list(example.input_ids) == SYSTEM_DEFAULT + MULTI_TURN_IDS[8:22]
    assert list(example.labels) == [X] * (len(SYSTEM_DEFAULT) + 10) + [19556, 17, 2, X]


def test_field_maps_read_other_column_and_key_names(smollm2_tokenizer):
    record = {"dialog": [{"speaker": turn["role"], "text": turn["content"]} for turn in MULTI_TURN["messages"]]}
    fields = Fields(messages="dialog", role="speaker", content="text")
    fmt, example = encode(smollm2_tokenizer, record, fields)
    assert fmt == "messages"
    assert list(example.input_ids) == MULTI_TURN_IDS and list(example.labels) == MULTI_TURN_LABELS


def test_role_maps_read_other_role_names(smollm2_tokenizer):
    names = {"system": "instructions", "user": "human", "assistant": "bot"}
    record = {"messages": [{"role": names[t["role"]], "content": t["content"]} for t in MULTI_TURN["messages"]]}
    fields = Fields(roles={"instructions": "system", "human": "user", "bot": "assistant"})
    _, example = encode(smollm2_tokenizer, record, fields)
    assert list(example.input_ids) == MULTI_TURN_IDS and list(example.labels) == MULTI_TURN_LABELS
    from loram_core.errors import LoramError

    with pytest.raises(LoramError, match="a role is one of system, user, assistant"):
        Fields(roles={"bot": "robot"})


def test_truncation_cuts_from_the_right_and_says_so(smollm2_tokenizer):
    _, example = encode(smollm2_tokenizer, MULTI_TURN)
    cut, was_cut = truncate(example, 20)
    assert was_cut and list(cut.input_ids) == MULTI_TURN_IDS[:20] and list(cut.labels) == MULTI_TURN_LABELS[:20]
    same, was_cut = truncate(example, len(example))
    assert not was_cut and same == example


def test_a_chatml_template_on_a_tokenizer_without_one(smollm2_tokenizer):
    from loram_core.data.chat_template import CHATML, resolve_chat_template

    assert resolve_chat_template(smollm2_tokenizer, "chatml", "m") == CHATML
    example = Encoder(smollm2_tokenizer, CHATML)(convert(MULTI_TURN, "messages", Fields(), "t", 0))
    assert list(example.labels) == MULTI_TURN_LABELS  # SmolLM2's template is ChatML with a default system turn


@pytest.mark.parametrize("record, fmt, expected", [
    ({"prompt": "x"}, "prompt_completion", "test, record 0: no 'completion' field (format prompt_completion)"),
    ({"messages": [{"role": "user", "content": "Hi"}]}, "messages", "'messages' has no assistant turn to train on"),
    ({"prompt": "Hi", "completion": "  "}, "prompt_completion", "field 'completion' is empty"),
    ({"messages": [{"role": "robot", "content": "Hi"}]}, "messages",
     "messages[0].role is 'robot', not one of system, user, assistant"),
    ({"conversations": [{"from": "alien", "value": "Hi"}]}, "sharegpt", "conversations[0].from is 'alien'"),
])
def test_a_bad_record_names_the_record_and_the_field(record, fmt, expected):
    from loram_core.errors import LoramError

    with pytest.raises(LoramError, match=re.escape(expected)):
        convert(record, fmt, Fields(), "test", 0)


@pytest.mark.parametrize("record, expected", [
    ({"question": "q", "answer": "a"}, "fits none of the formats"),
    ({"text": "t", "prompt": "p", "completion": "c"}, "fits text and prompt_completion of the formats"),
])
def test_a_format_auto_cannot_decide_is_refused(record, expected):
    from loram_core.errors import LoramError

    with pytest.raises(LoramError, match=expected):
        detect(record, Fields(), "test")


def test_a_tokenizer_without_a_template_is_an_error_for_chat_data():
    from loram_core.data.chat_template import resolve_chat_template
    from loram_core.errors import LoramError
    from loram_core.testing.tiny import tiny_tokenizer

    with pytest.raises(LoramError, match="is chat data, and the tokenizer of tiny has no chat template; pass --chat-template"):
        resolve_chat_template(tiny_tokenizer(), None, "tiny")
