"""A custom scorer used by the tests (named as tests.scorers_custom_example:function)."""


def mentions_order(item, view, params):
    return params.get("word", "order") in view.text


def explode(item, view, params):
    raise RuntimeError("scorer bug")


def half(item, view, params):
    return 0.5
