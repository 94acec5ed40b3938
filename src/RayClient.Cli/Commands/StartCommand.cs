using System.CommandLine;
using System.Runtime.InteropServices;
using RayClient.Server;

namespace RayClient.Cli.Commands;

/// <summary><c>rayclient start</c>: serves the embedded Ray server (port 10001 by default) until Ctrl+C.</summary>
internal static class StartCommand
{
    public static Command Create(TextWriter output, TextWriter error)
    {
        var port = new Option<int>("--port") { Description = "TCP port (0 = any free port).", DefaultValueFactory = _ => RayAddress.DefaultPort };
        var host = new Option<string>("--host") { Description = "Address to listen on (loopback by default: the server runs arbitrary Python).", DefaultValueFactory = _ => "127.0.0.1" };
        var cpus = new Option<double?>("--num-cpus") { Description = "CPUs offered to tasks (default: the machine's)." };
        var command = new Command("start", "Serve the embedded Ray client server until Ctrl+C.");
        command.Options.Add(port);
        command.Options.Add(host);
        command.Options.Add(cpus);
        var limits = new ServerLimitOptions();
        limits.AddTo(command);
        command.SetAction(async (parse, cancellationToken) =>
        {
            var options = new LocalRayServerOptions { Port = parse.GetValue(port), Host = parse.GetValue(host)! };
            if (parse.GetValue(cpus) is { } n)
            {
                options.NumCpus = n;
            }

            limits.Apply(parse, options);

            try
            {
                // SIGINT (Ctrl+C) and SIGTERM stop the server; the default action (an immediate
                // exit) is cancelled so the workers end and the work dir is deleted first.
                using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
                void OnSignal(PosixSignalContext context)
                {
                    context.Cancel = true;
                    stop.Cancel();
                }

                using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, OnSignal);
                using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, OnSignal);
                var server = await LocalRayServer.StartAsync(options, stop.Token).ConfigureAwait(false);
                try
                {
                    await output.WriteLineAsync($"Embedded Ray server listening at {server.Address}. Press Ctrl+C to stop.").ConfigureAwait(false);
                    await output.FlushAsync(CancellationToken.None).ConfigureAwait(false);
                    try
                    {
                        await Task.Delay(Timeout.Infinite, stop.Token).ConfigureAwait(false);
                    }
                    catch (OperationCanceledException)
                    {
                    }

                    await output.WriteLineAsync("Stopping: refusing new sessions, ending workers.").ConfigureAwait(false);
                }
                finally
                {
                    await server.DisposeAsync().ConfigureAwait(false);
                }

                await output.WriteLineAsync("Stopped.").ConfigureAwait(false);
                await output.FlushAsync(CancellationToken.None).ConfigureAwait(false);
                return 0;
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested || !cancellationToken.CanBeCanceled)
            {
                await output.WriteLineAsync("Stopped.").ConfigureAwait(false);
                return 0;
            }
            catch (IOException ex)
            {
                await error.WriteLineAsync($"error: cannot listen on {options.Host}:{options.Port}: {ex.Message}").ConfigureAwait(false);
                return 1;
            }
        });
        return command;
    }
}
