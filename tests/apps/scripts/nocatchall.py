"""Script mode without a "/" entry: unmatched paths get the server's 404."""


def only(env, resp):
    return "only: " + env["SCRIPT_NAME"] + "|" + env["PATH_INFO"]


def deep(env, resp):
    return "deep: " + env["SCRIPT_NAME"] + "|" + env["PATH_INFO"]


PATHS = [("/only", only), ("/deep/er/", deep)]
