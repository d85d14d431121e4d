def hello(env, resp):
    return "hello"

ROUTES = [("/", hello)]  # not PATHS
