def hello(env, resp):
    return "hello"

PATHS = [("/", hello), ("/about", "about.html")]
