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
        var tokenAuth = new Option<bool>("--token-auth") { Description = "Require Ray's token authentication, with the token found as Ray finds it: RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token (default: on when RAY_AUTH_MODE=token)." };
        var tokenFile = new Option<string?>("--auth-token-file") { Description = "Require the token in the first line of this file (clients send it as RAY_AUTH_TOKEN does)." };
        var tlsCert = new Option<string?>("--tls-cert") { Description = "PEM certificate of the server: serve TLS (default: RAY_TLS_SERVER_CERT when RAY_USE_TLS=1)." };
        var tlsKey = new Option<string?>("--tls-key") { Description = "PEM private key of --tls-cert (default: RAY_TLS_SERVER_KEY when RAY_USE_TLS=1)." };
        var tlsCa = new Option<string?>("--tls-ca-cert") { Description = "PEM CA: clients must present a certificate it issued, mutual TLS (default: RAY_TLS_CA_CERT when RAY_USE_TLS=1)." };
        var allowOpen = new Option<bool>("--allow-unauthenticated-network-access") { Description = "DANGEROUS: listen on a non-loopback --host without a token, letting anyone who reaches the port run any Python code as you." };
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
        command.Options.Add(python);
        command.Options.Add(tokenAuth);
        command.Options.Add(tokenFile);
        command.Options.Add(tlsCert);
        command.Options.Add(tlsKey);
        command.Options.Add(tlsCa);
        command.Options.Add(allowOpen);
        var limits = new ServerLimitOptions();
        limits.AddTo(command);
        command.Options.Add(dashboardPort);
        command.Options.Add(dataDir);
        command.SetAction(async (parse, cancellationToken) =>
        {
            var options = new LocalRayServerOptions
            {
                Port = parse.GetValue(port),
                Host = parse.GetValue(host)!,
                PythonExecutable = parse.GetValue(python),
                TokenAuthentication = parse.GetValue(tokenAuth),
                TlsCertificateFile = parse.GetValue(tlsCert),
                TlsKeyFile = parse.GetValue(tlsKey),
                TlsCaCertificateFile = parse.GetValue(tlsCa),
                AllowUnauthenticatedNetworkAccess = parse.GetValue(allowOpen),
                DashboardPort = parse.GetValue(dashboardPort),
                DataDirectory = parse.GetValue(dataDir),
            };
            if (parse.GetValue(cpus) is { } n)
            {
                options.NumCpus = n;
            }

            limits.Apply(parse, options);

            try
            {
                if (parse.GetValue(tokenFile) is { } file)
                {
                    // As Ray reads token files: the first line, whitespace trimmed.
                    string? line;
                    try
                    {
                        line = File.ReadLines(file).FirstOrDefault()?.Trim();
                    }
                    catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
                    {
                        throw new ArgumentException($"--auth-token-file: cannot read '{file}': {ex.Message}", ex);
                    }

                    options.AuthToken = string.IsNullOrEmpty(line) ? throw new ArgumentException($"--auth-token-file: the first line of '{file}' is empty.") : line;
                }

                // SIGINT (Ctrl+C) and SIGTERM stop the server; the default action (an immediate
                // exit) is cancelled so the workers end and the work dir is deleted first.
                using var stop = new TerminationSignals(cancellationToken);
                var server = await LocalRayServer.StartAsync(options, stop.Token).ConfigureAwait(false);
                try
                {
                    if (options.AllowUnauthenticatedNetworkAccess && !server.RequiresToken && !System.Net.IPAddress.IsLoopback(server.ListenAddress))
                    {
                        await error.WriteLineAsync($"WARNING: {server.Address} accepts clients WITHOUT authentication: anyone who can reach this port can run any Python code as this user.").ConfigureAwait(false);
                    }

                    await output.WriteLineAsync(
                        $"Embedded Ray server listening at {server.Address}{(server.UsesTls ? " (TLS)" : string.Empty)}{(server.RequiresToken ? ", token required" : string.Empty)}. Press Ctrl+C to stop.").ConfigureAwait(false);
                    await output.WriteLineAsync($"Ray Jobs API at {server.DashboardAddress} (job records and logs in {server.DataDirectory}).").ConfigureAwait(false);
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
            catch (LocalRayServerListenException ex)
            {
                // It names the port and the option that chose it.
                await error.WriteLineAsync($"error: {ex.Message}").ConfigureAwait(false);
                return 1;
            }
            catch (IOException ex)
            {
                await error.WriteLineAsync($"error: cannot listen on {options.Host}:{options.Port} (Jobs API port {options.DashboardPort}): {ex.Message}").ConfigureAwait(false);
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
