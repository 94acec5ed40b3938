using System.CommandLine;
using System.Globalization;
using RayClient.Server;

namespace RayClient.Cli.Commands;

/// <summary>
/// <c>rayclient demo</c>: starts the embedded server, pushes a working dir holding the Python of
/// Ray's job example, runs <c>generate_fibonacci(10)</c> once per CPU in parallel, and prints the
/// nodes, the CPU total and the results, as Ray's example does.
/// </summary>
internal static class DemoCommand
{
    /// <summary>The Python module the demo ships in its working dir (from Ray's "Quickstart using the Ray Jobs CLI").</summary>
    internal const string FibonacciModule = """
        def generate_fibonacci(sequence_size):
            fibonacci = []
            for i in range(0, sequence_size):
                if i < 2:
                    fibonacci.append(i)
                    continue
                fibonacci.append(fibonacci[i - 1] + fibonacci[i - 2])
            return len(fibonacci)
        """;

    public static Command Create(TextWriter output, TextWriter error)
    {
        var address = new Option<string?>("--address")
        {
            Description = "Run against this Ray cluster (ray://host:10001) instead of the embedded server.",
        };
        var size = new Option<int>("--sequence-size")
        {
            Description = "Length of the Fibonacci sequence each task builds.",
            DefaultValueFactory = _ => 10,
        };
        var deadline = new Option<double?>("--connect-deadline")
        {
            Description = "Seconds to keep trying to reach the cluster before giving up (default: Ray's patience, 30 s).",
        };
        var command = new Command("demo", "Run Ray's Fibonacci job example through RayClient (on the embedded server unless --address is given).");
        command.Options.Add(address);
        command.Options.Add(size);
        command.Options.Add(deadline);
        command.SetAction((parse, cancellationToken) => RunAsync(parse.GetValue(address), parse.GetValue(size), parse.GetValue(deadline), output, error, cancellationToken));
        return command;
    }

    internal static async Task<int> RunAsync(string? address, int sequenceSize, double? connectDeadlineSeconds, TextWriter output, TextWriter error, CancellationToken cancellationToken)
    {
        var workingDir = Path.Combine(Path.GetTempPath(), "rayclient-demo", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(workingDir);
        await File.WriteAllTextAsync(Path.Combine(workingDir, "fibonacci.py"), FibonacciModule, cancellationToken).ConfigureAwait(false);
        LocalRayServer? server = null;
        try
        {
            if (address is null)
            {
                server = await LocalRayServer.StartAsync(cancellationToken: cancellationToken).ConfigureAwait(false);
                address = server.Address;
                await output.WriteLineAsync($"Started the embedded Ray server at {address}").ConfigureAwait(false);
            }

            await using var ray = await RaySession.ConnectAsync(
                new RaySessionOptions
                {
                    Address = address,
                    RuntimeEnv = new RuntimeEnv { WorkingDir = workingDir },
                    ConnectDeadline = connectDeadlineSeconds is { } seconds ? TimeSpan.FromSeconds(seconds) : null,
                },
                cancellationToken).ConfigureAwait(false);
            await output.WriteLineAsync($"Connected to {ray.Address} (Ray {ray.Server.RayVersion}, Python {ray.Server.PythonVersion})").ConfigureAwait(false);

            var nodes = await ray.GetNodesAsync(cancellationToken).ConfigureAwait(false);
            var resources = await ray.GetClusterResourcesAsync(cancellationToken).ConfigureAwait(false);
            var cpus = (int)resources.GetValueOrDefault("CPU");
            await output.WriteLineAsync($"Nodes in the Ray cluster: {nodes.Count}").ConfigureAwait(false);
            await output.WriteLineAsync($"CPUs in the Ray cluster: {cpus}").ConfigureAwait(false);

            var fibonacci = PyFunction.Of<long>("fibonacci", "generate_fibonacci");
            var refs = Enumerable.Range(0, Math.Max(cpus, 1)).Select(_ => ray.Call(fibonacci, sequenceSize)).ToList();
            var results = await ray.GetAsync(refs, cancellationToken: cancellationToken).ConfigureAwait(false);
            await output.WriteLineAsync($"[{string.Join(", ", results.Select(r => r.ToString(CultureInfo.InvariantCulture)))}]").ConfigureAwait(false);
            return 0;
        }
        catch (Exception ex) when (CliErrors.IsUserFacing(ex))
        {
            await CliErrors.WriteAsync(error, ex).ConfigureAwait(false);
            return 1;
        }
        finally
        {
            if (server is not null)
            {
                await server.DisposeAsync().ConfigureAwait(false);
            }

            try
            {
                Directory.Delete(workingDir, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }
}
