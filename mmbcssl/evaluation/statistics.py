_STATISTICS = {}


def register_statistic(name):

    def add(fn):
        _STATISTICS[name] = fn
        return fn

    return add


def statistic(name):  # the registered function
    return _STATISTICS[name]
