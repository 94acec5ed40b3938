using System.CommandLine;
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
        var dashboardPort = new Option<int>("--dashboard-port") { Description = "TCP port of the Ray Jobs REST API (0 = any free port).", DefaultValueFactory = _ => 8265 };
        var dataDir = new Option<string>("--data-dir")
        {
            Description = "Where job records and logs are kept across restarts.",
            DefaultValueFactory = _ => LocalRayServerOptions.DefaultDataDirectory,
        };
        var command = new Command("start", "Serve the embedded Ray client server until Ctrl+C.");
        command.Options.Add(port);
        command.Options.Add(host);
        command.Options.Add(cpus);
        command.Options.Add(dashboardPort);
        command.Options.Add(dataDir);
        command.SetAction(async (parse, cancellationToken) =>
        {
            var options = new LocalRayServerOptions
            {
                Port = parse.GetValue(port),
                Host = parse.GetValue(host)!,
                DashboardPort = parse.GetValue(dashboardPort),
                DataDirectory = parse.GetValue(dataDir),

                // Ray's token auth for the Jobs API: RAY_AUTH_MODE=token with RAY_AUTH_TOKEN.
                DashboardAuthToken = Environment.GetEnvironmentVariable("RAY_AUTH_MODE") == "token" ? Environment.GetEnvironmentVariable("RAY_AUTH_TOKEN") : null,
            };
            if (Environment.GetEnvironmentVariable("RAY_AUTH_MODE") == "token" && string.IsNullOrEmpty(options.DashboardAuthToken))
            {
                await error.WriteLineAsync("error: RAY_AUTH_MODE=token needs the token in RAY_AUTH_TOKEN.").ConfigureAwait(false);
                return 2;
            }
            if (parse.GetValue(cpus) is { } n)
            {
                options.NumCpus = n;
            }

            try
            {
                await using var server = await LocalRayServer.StartAsync(options, cancellationToken).ConfigureAwait(false);
                await output.WriteLineAsync($"Embedded Ray server listening at {server.Address}. Press Ctrl+C to stop.").ConfigureAwait(false);
                await output.WriteLineAsync($"Ray Jobs API at {server.DashboardAddress} (job records and logs in {server.DataDirectory}).").ConfigureAwait(false);
                // Ctrl+C and SIGTERM stop the server gracefully: running jobs are ended and
                // their records stay on disk for the next start.
                using var stopping = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
                void Stop(System.Runtime.InteropServices.PosixSignalContext context)
                {
                    context.Cancel = true;
                    stopping.Cancel();
                }

                using var sigint = System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGINT, Stop);
                using var sigterm = System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGTERM, Stop);
                try
                {
                    await Task.Delay(Timeout.Infinite, stopping.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                }

                await output.WriteLineAsync("Stopped.").ConfigureAwait(false);
                return 0;
            }
            catch (IOException ex)
            {
                await error.WriteLineAsync($"error: cannot listen on {options.Host}:{options.Port} (Jobs API port {options.DashboardPort}): {ex.Message}").ConfigureAwait(false);
                return 1;
            }
        });
        return command;
    }
}
