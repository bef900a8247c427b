"""The review queue at `/` (a placeholder until the queue itself lands)."""

from __future__ import annotations

from flask import render_template

from server.web import web_blueprint
from server.web.access import EVERYONE, allow

bp = web_blueprint("queue", __name__)


@bp.get("/")
@allow(*EVERYONE)
def index():
    return render_template("queue.html")
