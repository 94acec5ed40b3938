// Laptop to cluster: with an address (ray://head:10001, or RAY_ADDRESS) this runs on that cluster;
// without one it starts the embedded server (RayClient.Server) on a free loopback port.
using RayClient;
using RayClient.Server;

var address = args.Length > 0 ? args[0] : Environment.GetEnvironmentVariable("RAY_ADDRESS");
await using var server = address is null ? await LocalRayServer.StartAsync() : null;
address ??= server!.Address;

// The Python that runs on the cluster lives in a working dir that RayClient zips and uploads once.
var code = Directory.CreateTempSubdirectory("ray-console-");
File.WriteAllText(Path.Combine(code.FullName, "fibonacci.py"), """
    def generate_fibonacci(sequence_size):
        fibonacci = []
        for i in range(0, sequence_size):
            if i < 2:
                fibonacci.append(i)
                continue
            fibonacci.append(fibonacci[i - 1] + fibonacci[i - 2])
        return fibonacci
    """);

await using var ray = await RaySession.ConnectAsync(new RaySessionOptions
{
    Address = address,
    RuntimeEnv = new RuntimeEnv { WorkingDir = code.FullName },
});

var fib = PyFunction.Of<long[]>("fibonacci", "generate_fibonacci");
long[] sequence = await ray.Call(fib, 10);
Console.WriteLine($"fibonacci(10) = [{string.Join(", ", sequence)}]");
Console.WriteLine($"CPUs: {(await ray.GetClusterResourcesAsync())["CPU"]}");
code.Delete(recursive: true);
