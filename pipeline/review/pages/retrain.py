"""Retrain: how many corrections exist; retrain the match model and the topic model with them,
their cross-validated figures beside the active models'; activate (the active one kept) or roll back."""
from flask import Blueprint, abort, current_app, redirect, render_template, url_for

from pipeline.errors import PetitionError
from pipeline.review import training
from pipeline.review.context import workbench

blueprint = Blueprint("retrain", __name__)
FIGURE_ZH = {"threshold": "链接阈值", "pairs": "样本对", "same": "其中同一事项", "precision": "精确率",
             "recall": "召回率", "average_precision": "平均精确率", "accuracy": "准确率", "macro_f1": "宏平均 F1",
             "folds": "交叉验证折数", "letters": "训练来信"}
SOURCE_ZH = {"all": "全部", "truth": "生成样本", "judged": "人工判定", "decided": "人工决定",
             "level2": "二级类别"}


def figure_label(name):
    """A card figure's name in Chinese: ``judged precision`` → 人工判定 · 精确率."""
    source, _, figure = name.rpartition(" ")
    return " · ".join(part for part in (SOURCE_ZH.get(source, source), FIGURE_ZH.get(figure, figure)) if part)


def _active(kind):
    config = workbench().config
    return {training.MATCHER: config.dedupe.matcher, training.TOPICS: config.classify.model_dir}[kind]


def _figures(kind, directory):
    card = training.read_card(directory)
    return card, (training.matcher_figures if kind == training.MATCHER else training.topic_figures)(card)


def page(message="", error=""):
    bench = workbench()
    models = []
    for kind, title in ((training.MATCHER, "匹配模型（同一事项）"), (training.TOPICS, "分类模型（问题类别）")):
        active = _active(kind)
        previous = active.with_name(active.name + training.PREVIOUS_SUFFIX)
        (active_card, now), (candidate_card, new) = (_figures(kind, active),
                                                     _figures(kind, training.candidate_dir(bench.home, kind)))
        models.append({"kind": kind, "title": title, "active": active_card, "candidate": candidate_card,
                       "rows": [(name, figure_label(name), a, b) for name, a, b in training.side_by_side(now, new)], "path": active,
                       "previous": training.read_card(previous) is not None})
    return render_template("retrain.html", counts=training.correction_counts(bench.decided_state()), models=models,
                           message=message, error=error)


@blueprint.route("/retrain")
def index():
    return page()


def _kind(kind):
    if kind not in (training.MATCHER, training.TOPICS):
        abort(404)
    return kind


@blueprint.route("/retrain/<kind>/train", methods=["POST"])
def train(kind):
    bench, options = workbench(), current_app.extensions["retrain"]
    try:
        if _kind(kind) == training.MATCHER:
            training.train_matcher_candidate(bench.home, bench.config, bench.decided_state(), sources=options["pairs"])
        else:
            training.train_topic_candidate(bench.home, bench.config, config_file=options["config_file"])
    except (PetitionError, ValueError) as exc:  # ValueError: too few pairs of a kind to cross-validate
        return page(error=str(exc)), 400
    return page(message="候选模型已训练：核对下方交叉验证结果后再启用")


@blueprint.route("/retrain/<kind>/activate", methods=["POST"])
def activate(kind):
    try:
        training.activate(training.candidate_dir(workbench().home, _kind(kind)), _active(kind))
    except PetitionError as exc:
        return page(error=str(exc)), 400
    return redirect(url_for("retrain.index"))


@blueprint.route("/retrain/<kind>/rollback", methods=["POST"])
def rollback(kind):
    try:
        training.rollback(_active(_kind(kind)))
    except PetitionError as exc:
        return page(error=str(exc)), 400
    return redirect(url_for("retrain.index"))
