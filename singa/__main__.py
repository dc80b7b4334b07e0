"""``singa-run`` / ``python -m singa``: SINGA's launcher.

    singa-run -conf job.conf [-resume] [-test] [-seed N]   run a job configuration
    singa-run -exec script.py [ARGS...]                    run a user script (as SINGA's -exec did)

Arguments SINGA's launcher passed to every process (-singa_conf F, -singa_job N, -host H) are
accepted and ignored.
"""
import os
import runpy
import sys

from singa.errors import SingaError

USAGE = __doc__


def _fail(msg, code=2):
    print("singa-run: error: %s" % msg, file=sys.stderr)
    return code


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    conf = script = None
    resume = test = False
    seed = 0
    rest = []
    i = 0
    while i < len(argv):
        a = argv[i]
        if a in ("-h", "--help", "-help"):
            print(USAGE)
            return 0
        if a == "-exec":
            if i + 1 >= len(argv):
                return _fail("-exec needs a script path, e.g. `singa-run -exec examples/mnist_mlp.py`")
            script = argv[i + 1]
            rest = argv[i + 2:]
            break
        if a in ("-conf", "-singa_conf", "-singa_job", "-host", "-seed"):
            if i + 1 >= len(argv):
                return _fail("%s needs a value" % a)
            if a == "-conf":
                conf = argv[i + 1]
            elif a == "-seed":
                try:
                    seed = int(argv[i + 1])
                except ValueError:
                    return _fail("Invalid value for `-seed`. Expected an integer. Received: %r" % argv[i + 1])
            i += 2
            continue
        if a == "-resume":
            resume = True
        elif a == "-test":
            test = True
        else:
            return _fail("unknown argument %r\n%s" % (a, USAGE))
        i += 1
    if script is not None:
        if not os.path.isfile(script):
            return _fail("no such script: %r" % script)
        sys.argv = [script] + rest
        sys.path.insert(0, os.path.dirname(os.path.abspath(script)))
        runpy.run_path(script, run_name="__main__")
        return 0
    if conf is None:
        return _fail("nothing to run: pass -conf job.conf or -exec script.py\n%s" % USAGE)
    from singa.driver import Driver
    from singa.proto import read_job_conf
    try:
        job = read_job_conf(conf)
        driver = Driver(argv=[conf] + argv, seed=seed)
        if test:
            driver.test(job)
        else:
            driver.train(job, resume=resume)
    except SingaError as e:
        return _fail(str(e))
    return 0


if __name__ == "__main__":
    sys.exit(main())
