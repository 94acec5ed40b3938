# Ray's job example, unchanged: `rayclient job submit --working-dir ./ -- python script.py`.
import ray

ray.init()

print(f"Nodes in the Ray cluster: {len(ray.nodes())}")
print(f"Cluster resources: {ray.cluster_resources()}")


@ray.remote
def generate_fibonacci(sequence_size):
    fibonacci = []
    for i in range(0, sequence_size):
        if i < 2:
            fibonacci.append(i)
            continue
        fibonacci.append(fibonacci[i - 1] + fibonacci[i - 2])
    return len(fibonacci)


sequence_size = 10
cpus = int(ray.cluster_resources()["CPU"])
print(ray.get([generate_fibonacci.remote(sequence_size) for _ in range(cpus)]))
