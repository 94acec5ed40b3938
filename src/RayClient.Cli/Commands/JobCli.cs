using System.CommandLine;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using RayClient.Jobs;

namespace RayClient.Cli.Commands;

/// <summary>
/// What every <c>rayclient job</c> command shares, as Ray's <c>ray job</c> CLI
/// (ray:python/ray/dashboard/modules/job/cli.py, cli_utils.py): the <c>--address</c>,
/// <c>--headers</c> and <c>--verify</c> options, the client, the status block and error output
/// (one <c>error:</c> line, exit code 1, no stack trace).
/// </summary>
internal sealed class JobCli
{
    public JobCli(TextWriter output, TextWriter error)
    {
        Output = output;
        Error = error;
        Address = new Option<string?>("--address")
        {
            Description = "Address of the Ray cluster's dashboard (http://<head-node>:8265). Can also be specified using the RAY_API_SERVER_ADDRESS environment variable (falls back to RAY_ADDRESS).",
        };
        Headers = new Option<string?>("--headers")
        {
            Description = "Headers to send with every request, as a JSON object, e.g. '{\"Authorization\": \"Bearer x\"}'. Falls back to RAY_JOB_HEADERS.",
        };
        Verify = new Option<string>("--verify")
        {
            Description = "Verify the server's TLS certificate: true/1, false/0, or a path to a CA bundle file or directory.",
            DefaultValueFactory = _ => "true",
        };
    }

    public TextWriter Output { get; }

    public TextWriter Error { get; }

    public Option<string?> Address { get; }

    public Option<string?> Headers { get; }

    public Option<string> Verify { get; }

    /// <summary>How often <c>stop</c> polls (Ray: every second).</summary>
    public TimeSpan PollInterval { get; init; } = TimeSpan.FromSeconds(1);

    public Command AddCommonOptions(Command command)
    {
        command.Options.Add(Address);
        command.Options.Add(Headers);
        command.Options.Add(Verify);
        return command;
    }

    /// <summary>Runs a command body: Ray and input errors become one <c>error:</c> line and exit code 1.</summary>
    public async Task<int> RunAsync(Func<Task<int>> body)
    {
        try
        {
            return await body().ConfigureAwait(false);
        }
        catch (Exception e) when (e is RayException or ArgumentException or IOException or JsonException or FormatException or UnauthorizedAccessException or System.Security.Cryptography.CryptographicException)
        {
            await Error.WriteLineAsync($"error: {e.Message}").ConfigureAwait(false);
            return 1;
        }
    }

    /// <summary>Creates the client and prints <c>Job submission server address: …</c>, as Ray does first.</summary>
    public async Task<JobSubmissionClient> CreateClientAsync(ParseResult parse)
    {
        var options = new JobSubmissionClientOptions
        {
            Address = parse.GetValue(Address),
            Headers = ParseHeaders(parse.GetValue(Headers) ?? Environment.GetEnvironmentVariable("RAY_JOB_HEADERS")),
            PollInterval = PollInterval,
        };
        var verify = parse.GetValue(Verify) ?? "true";
        switch (verify.Trim().ToLowerInvariant())
        {
            case "true" or "1":
                break;
            case "false" or "0":
                options.VerifyTls = false;
                break;
            default:
                options.CaCertificatesPath = verify;
                break;
        }

        var client = new JobSubmissionClient(options);
        await Output.WriteLineAsync($"Job submission server address: {RedactPassword(client.Address)}").ConfigureAwait(false);
        return client;
    }

    /// <summary>Ray's <c>_log_job_status</c>: a banner for SUCCEEDED and FAILED, a warning for STOPPED, else the status and message.</summary>
    public async Task<JobStatus> PrintStatusAsync(JobSubmissionClient client, string jobId, CancellationToken cancellationToken)
    {
        var info = await client.GetJobInfoAsync(jobId, cancellationToken).ConfigureAwait(false);
        switch (info.Status)
        {
            case JobStatus.Succeeded:
                await BannerAsync($"Job '{jobId}' succeeded").ConfigureAwait(false);
                break;
            case JobStatus.Stopped:
                await Output.WriteLineAsync($"Job '{jobId}' was stopped").ConfigureAwait(false);
                break;
            case JobStatus.Failed:
                await BannerAsync($"Job '{jobId}' failed").ConfigureAwait(false);
                if (info.Message is not null)
                {
                    await Output.WriteLineAsync($"Status message: {info.Message}").ConfigureAwait(false);
                }

                break;
            default:
                await Output.WriteLineAsync($"Status for job '{jobId}': {info.Status.ToWireName()}").ConfigureAwait(false);
                if (info.Message is not null)
                {
                    await Output.WriteLineAsync($"Status message: {info.Message}").ConfigureAwait(false);
                }

                break;
        }

        return info.Status;
    }

    /// <summary>A message framed by dashes with blank lines around (Ray's <c>_log_big_success_msg</c>).</summary>
    public async Task BannerAsync(string message)
    {
        var dashes = new string('-', message.Length);
        await Output.WriteLineAsync().ConfigureAwait(false);
        await Output.WriteLineAsync(dashes).ConfigureAwait(false);
        await Output.WriteLineAsync(message).ConfigureAwait(false);
        await Output.WriteLineAsync(dashes).ConfigureAwait(false);
        await Output.WriteLineAsync().ConfigureAwait(false);
    }

    /// <summary>
    /// Streams the job's log to the output until the job ends, then prints its status block
    /// (Ray's <c>_tail_logs</c>). Ctrl+C stops following and leaves the job running, and says so:
    /// exit code 130.
    /// </summary>
    public async Task<JobStatus?> FollowAsync(JobSubmissionClient client, string jobId, CancellationToken cancellationToken)
    {
        using var signals = new TerminationSignals(cancellationToken);
        try
        {
            await foreach (var chunk in client.TailJobLogsAsync(jobId, signals.Token).ConfigureAwait(false))
            {
                await Output.WriteAsync(chunk).ConfigureAwait(false);
                await Output.FlushAsync(signals.Token).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (signals.Token.IsCancellationRequested)
        {
            await Output.WriteLineAsync().ConfigureAwait(false);
            await Output.WriteLineAsync($"Stopped following the logs of job '{jobId}'. The job keeps running; stop it with: rayclient job stop {jobId}").ConfigureAwait(false);
            await Output.FlushAsync(CancellationToken.None).ConfigureAwait(false);
            return null;
        }

        return await PrintStatusAsync(client, jobId, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Joins argv into one shell command as Ray's CLI does: <c>shlex.join</c> on POSIX (PR #63797),
    /// <c>subprocess.list2cmdline</c> on Windows.
    /// </summary>
    public static string JoinEntrypoint(IReadOnlyList<string> arguments) =>
        OperatingSystem.IsWindows() ? string.Join(' ', arguments.Select(WindowsQuote)) : string.Join(' ', arguments.Select(ShellQuote));

    /// <summary>Python's <c>shlex.quote</c>.</summary>
    public static string ShellQuote(string argument)
    {
        if (argument.Length == 0)
        {
            return "''";
        }

        foreach (var c in argument)
        {
            if (!(char.IsAsciiLetterOrDigit(c) || c is '_' or '@' or '%' or '+' or '=' or ':' or ',' or '.' or '/' or '-'))
            {
                return "'" + argument.Replace("'", "'\"'\"'", StringComparison.Ordinal) + "'";
            }
        }

        return argument;
    }

    /// <summary>Python's <c>subprocess.list2cmdline</c> for one argument.</summary>
    public static string WindowsQuote(string argument)
    {
        if (argument.Length > 0 && argument.IndexOfAny([' ', '\t']) < 0 && !argument.Contains('"', StringComparison.Ordinal))
        {
            return argument;
        }

        var result = new StringBuilder("\"");
        var backslashes = 0;
        foreach (var c in argument)
        {
            if (c == '\\')
            {
                backslashes++;
                continue;
            }

            result.Append('\\', c == '"' ? (backslashes * 2) + 1 : backslashes);
            backslashes = 0;
            result.Append(c);
        }

        result.Append('\\', backslashes * 2).Append('"');
        return result.ToString();
    }

    /// <summary>A JSON object of strings (Ray's <c>--headers</c> / <c>RAY_JOB_HEADERS</c>).</summary>
    public static Dictionary<string, string>? ParseHeaders(string? json)
    {
        if (json is null)
        {
            return null;
        }

        var values = ParseObject(json, "--headers", "{\"KEY\": \"VALUE\"}");
        return values.ToDictionary(p => p.Key, p => p.Value?.GetValueKind() == JsonValueKind.String ? p.Value.GetValue<string>() : p.Value?.ToJsonString() ?? string.Empty, StringComparer.OrdinalIgnoreCase);
    }

    /// <summary>Parses a JSON object given on the command line, with a message naming the option.</summary>
    public static JsonObject ParseObject(string json, string option, string example)
    {
        try
        {
            return JsonNode.Parse(json) as JsonObject
                ?? throw new ArgumentException($"{option} must be a JSON object like {example}, got '{json}'.");
        }
        catch (JsonException e)
        {
            throw new ArgumentException($"Failed to parse {option} as JSON. Expected format: {example}, got '{json}': {e.Message}", e);
        }
    }

    /// <summary>Ray's <c>redact_url_password</c>.</summary>
    public static string RedactPassword(Uri address)
    {
        var text = address.ToString().TrimEnd('/');
        if (string.IsNullOrEmpty(address.UserInfo) || !address.UserInfo.Contains(':', StringComparison.Ordinal))
        {
            return text;
        }

        var user = address.UserInfo[..address.UserInfo.IndexOf(':', StringComparison.Ordinal)];
        return text.Replace(address.UserInfo + "@", user + ":<redacted>@", StringComparison.Ordinal);
    }

    public static string FormatTime(long? milliseconds) =>
        milliseconds is { } ms and > 0
            ? DateTimeOffset.FromUnixTimeMilliseconds(ms).ToLocalTime().ToString("yyyy-MM-dd HH:mm:ss", CultureInfo.InvariantCulture)
            : "-";
}
