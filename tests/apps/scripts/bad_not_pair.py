def hello(env, resp):
    return "hello"

PATHS = [("/", hello), ("/x", hello, "extra")]
