using System.Globalization;
using RayClient.Server;

// Serves the embedded Ray server for the process that started this one: prints one line
// "RAYCLIENT_SERVER_ADDRESS ray://127.0.0.1:<port>" once listening, and stops when its standard
// input closes (the parent ended or disposed it), so a kernel that dies never leaves it behind.
var options = new LocalRayServerOptions { Port = 0 };
for (var i = 0; i + 1 < args.Length; i += 2)
{
    switch (args[i])
    {
        case "--port":
            options.Port = int.Parse(args[i + 1], CultureInfo.InvariantCulture);
            break;
        case "--num-cpus":
            options.NumCpus = double.Parse(args[i + 1], CultureInfo.InvariantCulture);
            break;
        default:
            await Console.Error.WriteLineAsync($"unknown option {args[i]} (expected --port N, --num-cpus N)").ConfigureAwait(false);
            return 2;
    }
}

await using var server = await LocalRayServer.StartAsync(options).ConfigureAwait(false);
await Console.Out.WriteLineAsync($"RAYCLIENT_SERVER_ADDRESS {server.Address}").ConfigureAwait(false);
await Console.Out.FlushAsync().ConfigureAwait(false);

using var stop = new CancellationTokenSource();
using var sigterm = System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGTERM, context =>
{
    context.Cancel = true;
    stop.Cancel();
});
var stdinClosed = Task.Run(async () =>
{
    using var input = Console.OpenStandardInput();
    var buffer = new byte[256];
    while (await input.ReadAsync(buffer).ConfigureAwait(false) > 0)
    {
    }
});
await Task.WhenAny(stdinClosed, Task.Delay(Timeout.Infinite, stop.Token).ContinueWith(_ => { }, TaskScheduler.Default)).ConfigureAwait(false);
return 0;
