"""fulmen's benchmark pipeline, as a package; bench/run.py is its entry point.

    common     paths, the address and the bodies every module shares
    scenarios  the scenario table: what each one requests and how its answer is checked
    servers    the server table: how each one is started for a case
    install    bench/.venv: the peers from PyPI, the system packages they need, fulmen
    prepare    bench/.data and bench/.build: the files served, the reference responder
    procfs     /proc: the server's process tree, its CPU ticks and memory
    cgroup     the cgroup that charges the server's CPU time in ns
    running    one server process group started for one case, and its probe
    load       wrk and ab: their command lines and the parsing of their output
    measure    one measured run, and the loop over (server, case)
    report     the markdown tables and the plots
    results    the day's JSON file, merged, and what it records of the machine
    cli        the command line and main()

The method is written down in bench/README.md.
"""
