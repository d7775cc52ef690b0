from django.http import HttpRequest

from agents import llm


def baton(request: HttpRequest) -> dict:
    return {"offline_model": llm.is_offline()}
