using System.CommandLine;
using RayClient.Server;

namespace RayClient.Cli.Commands;

/// <summary><c>rayclient start</c>: serves the embedded Ray server (port 10001 by default) until Ctrl+C.</summary>
internal static class StartCommand
{
    public static Command Create(TextWriter output, TextWriter error)
    {
        var port = new Option<int>("--port") { Description = "TCP port (0 = any free port).", DefaultValueFactory = _ => RayAddress.DefaultPort };
        var host = new Option<string>("--host") { Description = "Address to listen on: an IP address or a host name such as localhost (loopback by default: the server runs arbitrary Python).", DefaultValueFactory = _ => "127.0.0.1" };
        var cpus = new Option<double?>("--num-cpus") { Description = "CPUs offered to tasks (default: the machine's)." };
        var python = new Option<string?>("--python") { Description = "Python interpreter for the workers (default: RAYCLIENT_PYTHON, else python3 on PATH)." };
        var command = new Command("start", "Serve the embedded Ray client server until Ctrl+C.");
        command.Options.Add(port);
        command.Options.Add(host);
        command.Options.Add(cpus);
        command.Options.Add(python);
        command.SetAction(async (parse, cancellationToken) =>
        {
            var options = new LocalRayServerOptions { Port = parse.GetValue(port), Host = parse.GetValue(host)!, PythonExecutable = parse.GetValue(python) };
            if (parse.GetValue(cpus) is { } n)
            {
                options.NumCpus = n;
            }

            try
            {
                await using var server = await LocalRayServer.StartAsync(options, cancellationToken).ConfigureAwait(false);
                await output.WriteLineAsync($"Embedded Ray server listening at {server.Address}. Press Ctrl+C to stop.").ConfigureAwait(false);
                try
                {
                    await Task.Delay(Timeout.Infinite, cancellationToken).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                }

                await output.WriteLineAsync("Stopped.").ConfigureAwait(false);
                return 0;
            }
            catch (IOException ex)
            {
                await error.WriteLineAsync($"error: cannot listen on {options.Host}:{options.Port}: {ex.Message}").ConfigureAwait(false);
                return 1;
            }
            catch (Exception ex) when (CliErrors.IsUserFacing(ex))
            {
                await CliErrors.WriteAsync(error, ex).ConfigureAwait(false);
                return 1;
            }
        });
        return command;
    }
}
