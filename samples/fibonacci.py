"""The Python of Ray's job example ("Quickstart using the Ray Jobs CLI"), called from the README's C# samples."""


def generate_fibonacci(sequence_size):
    fibonacci = []
    for i in range(0, sequence_size):
        if i < 2:
            fibonacci.append(i)
            continue
        fibonacci.append(fibonacci[i - 1] + fibonacci[i - 2])
    return len(fibonacci)
