"""Time to the first index and peak memory of the Trainer's block sampler: accelerate's seedable sampler
against medtrain's ChunkedRandomSampler (the same order). Usage: bench_sampler.py seedable|chunked N"""
import sys, time, resource, torch
from accelerate.data_loader import SeedableRandomSampler
from medtrain.training.trainer import ChunkedRandomSampler
n = int(sys.argv[2])
s = SeedableRandomSampler(range(n), data_seed=1) if sys.argv[1] == "seedable" else ChunkedRandomSampler(n, 1)
t0 = time.time(); it = iter(s); first = next(it)
print(sys.argv[1], n, f"first index after {time.time()-t0:.2f} s", f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss/1024:.0f} MB")
