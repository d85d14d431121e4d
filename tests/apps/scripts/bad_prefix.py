def hello(env, resp):
    return "hello"

PATHS = [("api", hello)]
