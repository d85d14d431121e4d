PATHS = []
