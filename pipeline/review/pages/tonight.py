"""Tonight: the latest run's counts, each a link into the lists."""
from flask import Blueprint, render_template

from pipeline.review.context import workbench

blueprint = Blueprint("tonight", __name__)


@blueprint.route("/")
def index():
    return render_template("tonight.html", counts=workbench().tonight())
