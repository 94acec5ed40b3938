using System.Collections.Concurrent;
using System.Diagnostics;
using System.IO.Compression;
using System.Net;
using System.Net.Sockets;
using System.Net.WebSockets;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;

namespace RayClient.FunctionalTests.Infrastructure;

/// <summary>
/// A small Kestrel server on loopback that answers Ray's Jobs REST contract as Ray's dashboard does
/// (ray:python/ray/dashboard/modules/job/job_head.py, job_manager.py; spec ray-jobs-api.md §3):
/// same paths, status codes, plain-text tracebacks and JSON, a WebSocket log tail batched as Ray
/// batches it, and entrypoints run as real <c>/bin/sh -c</c> processes in the unpacked working dir.
/// It stands in for the embedded server's Jobs API until that lands; tests take its
/// <see cref="BaseAddress"/> only, so they can be pointed at any Jobs server. Faults are real: an
/// answer of 503, a connection aborted after the request was processed.
/// </summary>
public sealed class RayJobsTestServer : IAsyncDisposable
{
    private static readonly string[] s_requestFields =
    [
        "entrypoint", "submission_id", "job_id", "runtime_env", "metadata", "entrypoint_num_cpus",
        "entrypoint_num_gpus", "entrypoint_memory", "entrypoint_resources", "entrypoint_label_selector",
    ];

    private readonly WebApplication _app;
    private readonly string _workDirectory;
    private readonly ConcurrentDictionary<string, TestJob> _jobs = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, JsonObject> _submitted = new(StringComparer.Ordinal);
    private readonly List<string> _jobOrder = [];
    private readonly ConcurrentDictionary<string, byte[]> _packages = new(StringComparer.Ordinal);
    private readonly ConcurrentQueue<RecordedRequest> _requests = new();
    private int _failNext;
    private int _failStatus = 503;
    private int _abortNextSubmitAnswers;
    private int _dropTailAfter = -1;
    private int _closeTailAfter = -1;

    private RayJobsTestServer(WebApplication app, string workDirectory, int port)
    {
        _app = app;
        _workDirectory = workDirectory;
        Port = port;
        BaseAddress = $"http://127.0.0.1:{port}";
    }

    /// <summary>The Jobs API's base URL, e.g. <c>http://127.0.0.1:54321</c>.</summary>
    public string BaseAddress { get; }

    /// <summary>The TCP port.</summary>
    public int Port { get; }

    /// <summary>What <c>/api/version</c> reports as <c>ray_version</c>. Default: 2.51.0.</summary>
    public string RayVersion { get; set; } = "2.51.0";

    /// <summary>When set, every route but the open ones needs <c>Authorization: Bearer &lt;token&gt;</c> (Ray's token auth).</summary>
    public string? Token { get; set; }

    /// <summary>Every request received, in order.</summary>
    public IReadOnlyList<RecordedRequest> Requests => [.. _requests];

    /// <summary>Uploaded packages by URI.</summary>
    public IReadOnlyDictionary<string, byte[]> Packages => _packages;

    /// <summary>The next <paramref name="count"/> requests are answered with <paramref name="status"/> (503: what a proxy or a restarting dashboard answers).</summary>
    public void FailNextRequests(int count, int status = 503)
    {
        _failStatus = status;
        Volatile.Write(ref _failNext, count);
    }

    /// <summary>The next <paramref name="count"/> submits are carried out, then their connection is aborted before the answer.</summary>
    public void AbortNextSubmitAnswers(int count) => Volatile.Write(ref _abortNextSubmitAnswers, count);

    /// <summary>The next log tail is closed normally (1000) after <paramref name="messages"/> messages, though the job still runs (an agent restart does that).</summary>
    public void CloseNextTailAfter(int messages) => Volatile.Write(ref _closeTailAfter, messages);

    /// <summary>The next log tail is aborted (no close frame) after <paramref name="messages"/> messages.</summary>
    public void DropNextTailAfter(int messages) => Volatile.Write(ref _dropTailAfter, messages);

    /// <summary>How many jobs were created under <paramref name="submissionId"/> (a retried submit must never make it 2).</summary>
    public int StartCount(string submissionId) => _jobs.TryGetValue(submissionId, out var job) ? job.Starts : 0;

    /// <summary>Starts the server on a free loopback port (or <paramref name="port"/>).</summary>
    public static async Task<RayJobsTestServer> StartAsync(int port = 0)
    {
        var workDirectory = Path.Combine(Path.GetTempPath(), "rayclient-jobs-test", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(workDirectory);
        var builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions());
        builder.WebHost.UseKestrelCore();
        builder.Services.AddRoutingCore();
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.Limits.MaxRequestBodySize = 100L * 1024 * 1024;
            k.Listen(IPAddress.Loopback, port);
        });
        var app = builder.Build();
        RayJobsTestServer? server = null;
        app.UseWebSockets();
        app.Use(async (context, next) => await server!.FilterAsync(context, next));
        app.UseRouting();
        app.MapGet("/api/version", (RequestDelegate)(c => server!.VersionAsync(c)));
        app.MapGet("/api/packages/{protocol}/{name}", (RequestDelegate)(c => server!.GetPackageAsync(c)));
        app.MapPut("/api/packages/{protocol}/{name}", (RequestDelegate)(c => server!.PutPackageAsync(c)));
        // Routing matches "/api/jobs" too (Ray serves the slash form; the spec asks for both).
        app.MapPost("/api/jobs/", (RequestDelegate)(c => server!.SubmitAsync(c)));
        app.MapGet("/api/jobs/", (RequestDelegate)(c => server!.ListAsync(c)));
        app.MapGet("/api/jobs/{id}", (RequestDelegate)(c => server!.InfoAsync(c)));
        app.MapPost("/api/jobs/{id}/stop", (RequestDelegate)(c => server!.StopAsync(c)));
        app.MapDelete("/api/jobs/{id}", (RequestDelegate)(c => server!.DeleteAsync(c)));
        app.MapGet("/api/jobs/{id}/logs", (RequestDelegate)(c => server!.LogsAsync(c)));
        app.MapGet("/api/jobs/{id}/logs/tail", (RequestDelegate)(c => server!.TailAsync(c)));
        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        server = new RayJobsTestServer(app, workDirectory, new Uri(address).Port);
        return server;
    }

    /// <summary>A loopback port nothing listens on (connection refused), for as long as nobody takes it.</summary>
    public static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var job in _jobs.Values)
        {
            job.Kill();
        }

        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(5));
        await _app.StopAsync(stop.Token);
        await _app.DisposeAsync();
        foreach (var job in _jobs.Values)
        {
            await job.Exited.WaitAsync(TimeSpan.FromSeconds(10));
        }

        try
        {
            Directory.Delete(_workDirectory, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    private async Task FilterAsync(HttpContext context, Func<Task> next)
    {
        var headers = context.Request.Headers.ToDictionary(h => h.Key, h => h.Value.ToString(), StringComparer.OrdinalIgnoreCase);
        _requests.Enqueue(new RecordedRequest(context.Request.Method, context.Request.Path.Value ?? string.Empty, headers));

        // Ray's browser check (http_server_head.py): POST/PUT from a browser is refused.
        if (context.Request.Method is "POST" or "PUT"
            && (context.Request.Headers.UserAgent.ToString().StartsWith("Mozilla", StringComparison.Ordinal)
                || context.Request.Headers.ContainsKey("Origin") || context.Request.Headers.ContainsKey("Referer")))
        {
            await Text(context, 405, "Method Not Allowed for browser traffic.");
            return;
        }

        if (Token is { } token)
        {
            var auth = context.Request.Headers.Authorization.ToString();
            if (auth.Length == 0)
            {
                await Text(context, 401, "Unauthorized: Missing authentication token");
                return;
            }

            if (auth != "Bearer " + token)
            {
                await Text(context, 403, "Forbidden: Invalid authentication token");
                return;
            }
        }

        if (Interlocked.Decrement(ref _failNext) >= 0)
        {
            await Text(context, _failStatus, "503 Service Unavailable");
            return;
        }

        Interlocked.Exchange(ref _failNext, Math.Max(Volatile.Read(ref _failNext), 0));
        try
        {
            await next();
        }
        catch (Exception e) when (!context.Response.HasStarted && e is not OperationCanceledException)
        {
            // As Ray's handlers do: a traceback as plain text.
            await Text(context, 500, "Traceback (most recent call last):\n" + e);
        }
    }

    private Task VersionAsync(HttpContext context) => Json(context, 200, new JsonObject
    {
        ["version"] = "4",
        ["ray_version"] = RayVersion,
        ["ray_commit"] = "0000000000000000000000000000000000000000",
        ["session_name"] = "session_2026-01-01_00-00-00_000000_1",
    });

    private Task GetPackageAsync(HttpContext context)
    {
        var uri = $"{context.Request.RouteValues["protocol"]}://{context.Request.RouteValues["name"]}";
        return _packages.ContainsKey(uri) ? Text(context, 200, string.Empty) : Text(context, 404, $"Package {uri} does not exist");
    }

    private async Task PutPackageAsync(HttpContext context)
    {
        var uri = $"{context.Request.RouteValues["protocol"]}://{context.Request.RouteValues["name"]}";
        using var body = new MemoryStream();
        await context.Request.Body.CopyToAsync(body);
        _packages[uri] = body.ToArray();
        await Text(context, 200, string.Empty);
    }

    /// <summary>The JSON body of the first submit of job <paramref name="id"/>, as the server received it (keys with null values stripped, as Ray does).</summary>
    public JsonObject? SubmittedRequest(string id) => _submitted.TryGetValue(id, out var request) ? request : null;

    private async Task SubmitAsync(HttpContext context)
    {
        JsonObject request;
        try
        {
            request = (await JsonNode.ParseAsync(context.Request.Body))?.AsObject() ?? throw new JsonException("not an object");
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException)
        {
            await Text(context, 500, $"Traceback (most recent call last):\njson.decoder.JSONDecodeError: {e.Message}");
            return;
        }

        foreach (var (key, value) in request.ToList())
        {
            if (value is null)
            {
                request.Remove(key); // strip_keys_with_value_none
            }
            else if (Array.IndexOf(s_requestFields, key) < 0)
            {
                await Text(context, 400, $"Traceback (most recent call last):\n  File \"job/utils.py\", line 1, in parse_and_validate_request\nTypeError: JobSubmitRequest.__init__() got an unexpected keyword argument '{key}'");
                return;
            }
        }

        if (request["entrypoint"] is not JsonValue entry || entry.GetValueKind() != JsonValueKind.String)
        {
            await Text(context, 400, "Traceback (most recent call last):\nTypeError: entrypoint must be a string, got <class 'NoneType'>");
            return;
        }

        if (request["runtime_env"]?["env_vars"] is JsonObject vars && vars.Any(v => v.Value?.GetValueKind() != JsonValueKind.String))
        {
            await Text(context, 400, "Traceback (most recent call last):\nTypeError: runtime_env['env_vars'] values must be strings");
            return;
        }

        var id = request["submission_id"]?.GetValue<string>();
        if (string.IsNullOrEmpty(id))
        {
            id = request["job_id"]?.GetValue<string>();
        }

        if (string.IsNullOrEmpty(id))
        {
            id = RayClient.Jobs.SubmissionIds.Generate();
        }

        _submitted.TryAdd(id, (JsonObject)request.DeepClone());
        var job = new TestJob(id, entry.GetValue<string>(), request["runtime_env"] as JsonObject ?? [], request["metadata"] as JsonObject ?? []);
        if (!_jobs.TryAdd(id, job))
        {
            _jobs[id].Starts++;
            await Text(context, 500,
                "Traceback (most recent call last):\n  File \"job_head.py\", line 1, in submit_job\n" +
                $"RuntimeError: Request failed with status code 400: Traceback (most recent call last):\nValueError: Job with submission_id {id} already exists. Please use a different submission_id.\n.");
            return;
        }

        lock (_jobOrder)
        {
            _jobOrder.Add(id);
        }

        job.Starts = 1;
        job.Start(PrepareWorkingDir(job.RuntimeEnv));
        if (Interlocked.Decrement(ref _abortNextSubmitAnswers) >= 0)
        {
            context.Abort();
            return;
        }

        Interlocked.Exchange(ref _abortNextSubmitAnswers, Math.Max(Volatile.Read(ref _abortNextSubmitAnswers), 0));
        await Json(context, 200, new JsonObject { ["job_id"] = id, ["submission_id"] = id });
    }

    private string? PrepareWorkingDir(JsonObject runtimeEnv)
    {
        if (runtimeEnv["working_dir"]?.GetValue<string>() is not { } uri)
        {
            return null;
        }

        if (!_packages.TryGetValue(uri, out var zip))
        {
            return null;
        }

        var directory = Path.Combine(_workDirectory, "pkg_" + Guid.NewGuid().ToString("N"));
        using var archive = new ZipArchive(new MemoryStream(zip), ZipArchiveMode.Read);
        archive.ExtractToDirectory(directory);
        return directory;
    }

    private Task ListAsync(HttpContext context)
    {
        var array = new JsonArray();
        lock (_jobOrder)
        {
            foreach (var id in _jobOrder)
            {
                if (_jobs.TryGetValue(id, out var job))
                {
                    array.Add(job.ToJson());
                }
            }
        }

        return Json(context, 200, array);
    }

    private Task InfoAsync(HttpContext context) =>
        WithJob(context, job => Json(context, 200, job.ToJson()));

    private Task StopAsync(HttpContext context) =>
        WithJob(context, job => Json(context, 200, new JsonObject { ["stopped"] = job.Stop() }));

    private Task DeleteAsync(HttpContext context) => WithJob(context, job =>
    {
        if (!job.Status.IsTerminalName())
        {
            return Text(context, 500, $"Traceback (most recent call last):\nRuntimeError: Request failed with status code 500: Attempted to delete job '{job.Id}', but it is in a non-terminal state {job.Status}.");
        }

        _jobs.TryRemove(job.Id, out _);
        lock (_jobOrder)
        {
            _jobOrder.Remove(job.Id);
        }

        return Json(context, 200, new JsonObject { ["deleted"] = true });
    });

    private Task LogsAsync(HttpContext context) =>
        WithJob(context, job => Json(context, 200, new JsonObject { ["logs"] = job.Logs }));

    private Task TailAsync(HttpContext context) => WithJob(context, async job =>
    {
        if (!context.WebSockets.IsWebSocketRequest)
        {
            await Text(context, 400, "Expected a WebSocket request.");
            return;
        }

        using var socket = await context.WebSockets.AcceptWebSocketAsync();
        var dropAfter = Interlocked.Exchange(ref _dropTailAfter, -1);
        var closeAfter = Interlocked.Exchange(ref _closeTailAfter, -1);
        var sent = 0;
        var offset = 0;
        while (true)
        {
            var changed = job.Changed;
            var terminal = job.Status.IsTerminalName();
            var logs = job.Logs;
            while (offset < logs.Length)
            {
                // Ray's file_tail_iterator: up to 10 lines, or cut once past 20,000 characters.
                var end = offset;
                var lines = 0;
                while (end < logs.Length && lines < 10 && end - offset < 20000)
                {
                    var newline = logs.IndexOf('\n', end);
                    if (newline < 0)
                    {
                        end = logs.Length;
                        break;
                    }

                    end = newline + 1;
                    lines++;
                }

                await socket.SendAsync(Encoding.UTF8.GetBytes(logs[offset..end]), WebSocketMessageType.Text, true, context.RequestAborted);
                offset = end;
                if (++sent == dropAfter)
                {
                    context.Abort();
                    return;
                }

                if (sent == closeAfter)
                {
                    await socket.CloseAsync(WebSocketCloseStatus.NormalClosure, null, context.RequestAborted);
                    return;
                }
            }

            if (terminal)
            {
                await socket.CloseAsync(WebSocketCloseStatus.NormalClosure, null, context.RequestAborted);
                return;
            }

            await changed.WaitAsync(context.RequestAborted);
        }
    });

    private async Task WithJob(HttpContext context, Func<TestJob, Task> action)
    {
        var id = (string)context.Request.RouteValues["id"]!;
        if (!_jobs.TryGetValue(id, out var job))
        {
            await Text(context, 404, $"Job {id} does not exist");
            return;
        }

        await action(job);
    }

    private static async Task Text(HttpContext context, int status, string text)
    {
        context.Response.StatusCode = status;
        context.Response.ContentType = "text/plain; charset=utf-8";
        await context.Response.WriteAsync(text);
    }

    private static async Task Json(HttpContext context, int status, JsonNode node)
    {
        context.Response.StatusCode = status;
        context.Response.ContentType = "application/json";
        await context.Response.WriteAsync(node.ToJsonString());
    }

    /// <summary>A request as received.</summary>
    public sealed record RecordedRequest(string Method, string Path, IReadOnlyDictionary<string, string> Headers);

    private sealed class TestJob
    {
        private readonly object _lock = new();
        private readonly StringBuilder _logs = new();
        private readonly long _startTime = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        private readonly TaskCompletionSource _exited = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private TaskCompletionSource _changed = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private Process? _process;
        private long? _endTime;
        private int? _exitCode;
        private string _message;
        private bool _stopping;

        public TestJob(string id, string entrypoint, JsonObject runtimeEnv, JsonObject metadata)
        {
            Id = id;
            Entrypoint = entrypoint;
            RuntimeEnv = runtimeEnv;
            Metadata = metadata;
            Status = "PENDING";
            _message = "Job has not started yet.";
        }

        public string Id { get; }

        public string Entrypoint { get; }

        public JsonObject RuntimeEnv { get; }

        public JsonObject Metadata { get; }

        public int Starts { get; set; }

        public string Status { get; private set; }

        public Task Exited => _exited.Task;

        public Task Changed
        {
            get
            {
                lock (_lock)
                {
                    return _changed.Task;
                }
            }
        }

        public string Logs
        {
            get
            {
                lock (_lock)
                {
                    return _logs.ToString();
                }
            }
        }

        public void Start(string? workingDir)
        {
            var start = new ProcessStartInfo("/bin/sh")
            {
                ArgumentList = { "-c", Entrypoint },
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                WorkingDirectory = workingDir ?? Path.GetTempPath(),
            };
            start.Environment["PYTHONUNBUFFERED"] = "1";
            if (RuntimeEnv["env_vars"] is JsonObject vars)
            {
                foreach (var (name, value) in vars)
                {
                    start.Environment[name] = value?.GetValue<string>();
                }
            }

            Append($"Running entrypoint for job {Id}: {Entrypoint}\n");
            var process = new Process { StartInfo = start, EnableRaisingEvents = true };
            process.OutputDataReceived += (_, e) => { if (e.Data is not null) { Append(e.Data + "\n"); } };
            process.ErrorDataReceived += (_, e) => { if (e.Data is not null) { Append(e.Data + "\n"); } };
            process.Exited += (_, _) => OnExited(process);
            lock (_lock)
            {
                _process = process;
                process.Start();
                process.BeginOutputReadLine();
                process.BeginErrorReadLine();
                Status = "RUNNING";
                _message = "Job is currently running.";
                Signal();
            }
        }

        public bool Stop()
        {
            lock (_lock)
            {
                if (Status.IsTerminalName() || _process is null)
                {
                    return false;
                }

                _stopping = true;
            }

            Kill();
            return true;
        }

        public void Kill()
        {
            try
            {
                _process?.Kill(entireProcessTree: true);
            }
            catch (InvalidOperationException)
            {
            }
        }

        public JsonObject ToJson() => new()
        {
            ["type"] = "SUBMISSION",
            ["job_id"] = null,
            ["submission_id"] = Id,
            ["driver_info"] = null,
            ["status"] = Status,
            ["entrypoint"] = Entrypoint,
            ["message"] = _message,
            ["error_type"] = Status == "FAILED" ? "JOB_ENTRYPOINT_COMMAND_ERROR" : null,
            ["start_time"] = _startTime,
            ["end_time"] = _endTime,
            ["metadata"] = Metadata.DeepClone(),
            ["runtime_env"] = RuntimeEnv.DeepClone(),
            ["driver_agent_http_address"] = "http://127.0.0.1:52365",
            ["driver_node_id"] = new string('a', 56),
            ["driver_exit_code"] = _exitCode,
            ["a_field_from_a_newer_ray"] = 1,
        };

        private void OnExited(Process process)
        {
            // Start has finished (the readers run), then let them drain before the status turns terminal.
            lock (_lock)
            {
            }

            process.WaitForExit();
            lock (_lock)
            {
                var code = process.ExitCode;
                if (_stopping)
                {
                    Status = "STOPPED";
                    _message = "Job was intentionally stopped.";
                }
                else if (code == 0)
                {
                    Status = "SUCCEEDED";
                    _message = "Job finished successfully.";
                    _exitCode = 0;
                }
                else
                {
                    Status = "FAILED";
                    _exitCode = code;
                    var tail = string.Join('\n', _logs.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries).TakeLast(10));
                    _message = $"Job entrypoint command failed with exit code {code}, last available logs (truncated to 20,000 chars):\n{tail}";
                }

                _endTime = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
                Signal();
            }

            process.Dispose();
            _exited.TrySetResult();
        }

        private void Append(string text)
        {
            lock (_lock)
            {
                _logs.Append(text);
                Signal();
            }
        }

        private void Signal()
        {
            var previous = _changed;
            _changed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            previous.TrySetResult();
        }
    }
}

internal static class JobStatusNames
{
    public static bool IsTerminalName(this string status) => status is "STOPPED" or "SUCCEEDED" or "FAILED";
}
