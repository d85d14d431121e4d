# fulmen's script mode (Fapws4 style): the seed's script, unchanged.
def hello(env, resp):
    return "hello world!"


PATHS = [("/", hello)]
