using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Time.Testing;
using RayClient.Jobs;

namespace RayClient.Tests.Jobs;

/// <summary>The retry policy and the submit's idempotency, on virtual time (the HTTP exchanges are scripted below the socket).</summary>
public sealed class JobsRetryTests
{
    private static readonly TimeSpan s_wait = TimeSpan.FromSeconds(20);
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));

    private static HttpResponseMessage Status(HttpStatusCode status, string body = "") =>
        new(status) { Content = new StringContent(body, Encoding.UTF8, status == HttpStatusCode.OK ? "application/json" : "text/plain") };

    private static Exception Refused() =>
        new HttpRequestException(HttpRequestError.ConnectionError, "Connection refused (127.0.0.1:8265)", new SocketException((int)SocketError.ConnectionRefused));

    private JobSubmissionClient Client(ScriptedHandler handler, JobsRetryPolicy? policy = null) => new(new JobSubmissionClientOptions
    {
        Address = "http://head:8265",
        HttpHandler = handler,
        TimeProvider = _time,
        GetEnvironmentVariable = _ => null,
        RequestTimeout = TimeSpan.FromSeconds(10),
        RetryPolicy = policy ?? JobsRetryPolicy.Default,
    });

    /// <summary>Moves virtual time on in steps until <paramref name="task"/> ends (a bounded poll: Polly registers its delay asynchronously).</summary>
    private async Task<TimeSpan> AdvanceUntilAsync(Task task, TimeSpan step)
    {
        var start = _time.GetUtcNow();
        var deadline = DateTime.UtcNow + s_wait;
        while (!task.IsCompleted)
        {
            Assert.True(DateTime.UtcNow < deadline, "the call did not end");
            _time.Advance(step);
            await Task.WhenAny(task, Task.Delay(2));
        }

        return _time.GetUtcNow() - start;
    }

    [Fact]
    public async Task Request_RefusedThen503Then502_IsRetriedUntilItSucceeds()
    {
        var handler = new ScriptedHandler();
        handler.On("/api/jobs/", _ => throw Refused(), _ => Status(HttpStatusCode.ServiceUnavailable), _ => Status(HttpStatusCode.BadGateway), _ => Status(HttpStatusCode.OK, "[]"));
        using var client = Client(handler);

        var list = client.ListJobsAsync();
        var elapsed = await AdvanceUntilAsync(list, TimeSpan.FromMilliseconds(50));

        Assert.Empty(await list);
        Assert.Equal(4, handler.Count("/api/jobs/"));
        Assert.True(elapsed > TimeSpan.Zero, "retries waited on virtual time");
    }

    [Theory]
    [InlineData(HttpStatusCode.InternalServerError)]
    [InlineData(HttpStatusCode.BadRequest)]
    [InlineData(HttpStatusCode.NotFound)]
    public async Task Request_NonTransientStatus_IsNotRetried(HttpStatusCode status)
    {
        var handler = new ScriptedHandler();
        handler.On("/api/jobs/x", _ => Status(status, "Job x does not exist"), _ => Status(HttpStatusCode.OK));
        using var client = Client(handler);

        var error = await Assert.ThrowsAnyAsync<RayJobsException>(() => client.GetJobInfoAsync("x"));

        Assert.Equal((int)status, error.StatusCode);
        Assert.Equal(1, handler.Count("/api/jobs/x"));
    }

    [Fact]
    public async Task Request_AlwaysUnavailable_StopsRetryingOnceTheBudgetIsSpent()
    {
        var handler = new ScriptedHandler();
        handler.Always("/api/jobs/", _ => Status(HttpStatusCode.ServiceUnavailable, "busy"));
        var policy = new JobsRetryPolicy { MaxRetryAttempts = 1000, InitialDelay = TimeSpan.FromSeconds(1), MaxDelay = TimeSpan.FromSeconds(1), Budget = TimeSpan.FromSeconds(5) };
        using var client = Client(handler, policy);

        var list = client.ListJobsAsync();
        var elapsed = await AdvanceUntilAsync(list, TimeSpan.FromMilliseconds(100));

        var error = await Assert.ThrowsAsync<RayJobsException>(() => list);
        Assert.Equal(503, error.StatusCode);
        Assert.True(error.IsTransient);
        Assert.InRange(elapsed, TimeSpan.FromSeconds(5), TimeSpan.FromSeconds(6.5));
        Assert.InRange(handler.Count("/api/jobs/"), 2, 60);
    }

    [Fact]
    public async Task Request_AttemptWithoutAnswer_TimesOutOnVirtualTimeAndIsRetried()
    {
        var handler = new ScriptedHandler();
        handler.On("/api/jobs/", async (_, ct) => { await Task.Delay(Timeout.Infinite, ct); return Status(HttpStatusCode.OK); }, _ => Status(HttpStatusCode.OK, "[]"));
        using var client = Client(handler);

        var list = client.ListJobsAsync();
        var elapsed = await AdvanceUntilAsync(list, TimeSpan.FromMilliseconds(250));

        Assert.Empty(await list);
        Assert.Equal(2, handler.Count("/api/jobs/"));
        Assert.True(elapsed >= TimeSpan.FromSeconds(10), $"the first attempt's deadline is 10 s, waited {elapsed}");
    }

    [Fact]
    public async Task Request_NoRetryPolicy_ReportsTheFirstRefusal()
    {
        var handler = new ScriptedHandler();
        handler.On("/api/jobs/", _ => throw Refused(), _ => Status(HttpStatusCode.OK, "[]"));
        using var client = Client(handler, JobsRetryPolicy.None);

        var error = await Assert.ThrowsAsync<RayConnectionException>(() => client.ListJobsAsync());

        Assert.Contains("connection refused", error.Message);
        Assert.Equal(1, handler.Count("/api/jobs/"));
    }

    [Fact]
    public async Task Request_CancelledDuringTheBackoff_EndsAtOnce()
    {
        var handler = new ScriptedHandler();
        handler.Always("/api/jobs/", _ => Status(HttpStatusCode.ServiceUnavailable));
        using var client = Client(handler, JobsRetryPolicy.Default with { InitialDelay = TimeSpan.FromHours(1), MaxDelay = TimeSpan.FromHours(1), Budget = TimeSpan.FromDays(1) });
        using var cts = new CancellationTokenSource();

        var list = client.ListJobsAsync(cts.Token);
        await handler.WaitForCountAsync("/api/jobs/", 1).WaitAsync(s_wait);
        await cts.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => list.WaitAsync(s_wait));
        Assert.Equal(1, handler.Count("/api/jobs/"));
    }

    [Fact]
    public async Task SubmitJobAsync_AnswerLost_RetriesWithTheSameGeneratedIdAndAdoptsItsOwnJob()
    {
        var handler = new ScriptedHandler();
        string? firstId = null;
        handler.On(
            "/api/jobs/",
            r => { firstId = SubmittedId(r); throw new HttpRequestException(HttpRequestError.ResponseEnded, "The response ended prematurely."); },
            r => Status(HttpStatusCode.InternalServerError, $"Traceback (most recent call last):\nValueError: Job with submission_id {SubmittedId(r)} already exists. Please use a different submission_id."));
        handler.Always("/api/jobs/raysubmit_", r => Status(HttpStatusCode.OK, $$"""{"type":"SUBMISSION","submission_id":"{{r.RequestUri!.Segments[^1]}}","status":"RUNNING","entrypoint":"python run.py"}"""));
        using var client = Client(handler);

        var submit = client.SubmitJobAsync(new JobSubmission("python run.py"));
        await AdvanceUntilAsync(submit, TimeSpan.FromMilliseconds(50));

        var id = await submit;
        Assert.True(SubmissionIds.IsGenerated(id), id);
        Assert.Equal(firstId, id);
        Assert.Equal([id, id], handler.Bodies("/api/jobs/").Select(b => JsonNode.Parse(b)!["submission_id"]!.GetValue<string>()));
    }

    [Fact]
    public async Task SubmitJobAsync_DuplicateAfterARetryButAnotherEntrypoint_ThrowsRayJobAlreadyExists()
    {
        var handler = new ScriptedHandler();
        handler.On(
            "/api/jobs/",
            _ => Status(HttpStatusCode.ServiceUnavailable),
            r => Status(HttpStatusCode.InternalServerError, $"ValueError: Job with submission_id {SubmittedId(r)} already exists. Please use a different submission_id."));
        handler.Always("/api/jobs/mine", _ => Status(HttpStatusCode.OK, """{"type":"SUBMISSION","submission_id":"mine","status":"RUNNING","entrypoint":"somebody else's"}"""));
        using var client = Client(handler);

        var submit = client.SubmitJobAsync(new JobSubmission("python run.py") { SubmissionId = "mine" });
        await AdvanceUntilAsync(submit, TimeSpan.FromMilliseconds(50));

        var error = await Assert.ThrowsAsync<RayJobAlreadyExistsException>(() => submit);
        Assert.Equal("mine", error.SubmissionId);
    }

    [Fact]
    public async Task SubmitJobAsync_DuplicateOnTheFirstAttempt_ThrowsWithoutLookingForTheJob()
    {
        var handler = new ScriptedHandler();
        handler.On("/api/jobs/", r => Status(HttpStatusCode.InternalServerError, $"ValueError: Job with submission_id {SubmittedId(r)} already exists."));
        using var client = Client(handler);

        await Assert.ThrowsAsync<RayJobAlreadyExistsException>(() => client.SubmitJobAsync(new JobSubmission("x") { SubmissionId = "taken" }));

        Assert.Equal(0, handler.Count("/api/jobs/taken"));
    }

    private static string SubmittedId(HttpRequestMessage request) =>
        JsonNode.Parse(request.Content!.ReadAsStringAsync().GetAwaiter().GetResult())!["submission_id"]!.GetValue<string>();

    /// <summary>Answers requests by path prefix from a script; <c>/api/version</c> answers Ray 2.51.0.</summary>
    private sealed class ScriptedHandler : HttpMessageHandler
    {
        private readonly Dictionary<string, Queue<Func<HttpRequestMessage, CancellationToken, Task<HttpResponseMessage>>>> _scripts = [];
        private readonly Dictionary<string, Func<HttpRequestMessage, HttpResponseMessage>> _always = [];
        private readonly List<(string Path, string? Body)> _seen = [];

        public void On(string path, params Func<HttpRequestMessage, HttpResponseMessage>[] answers) =>
            _scripts[path] = new(answers.Select(a => (Func<HttpRequestMessage, CancellationToken, Task<HttpResponseMessage>>)((r, _) => Task.FromResult(a(r)))));

        public void On(string path, Func<HttpRequestMessage, CancellationToken, Task<HttpResponseMessage>> first, Func<HttpRequestMessage, HttpResponseMessage> then) =>
            _scripts[path] = new([first, (r, _) => Task.FromResult(then(r))]);

        public void Always(string pathPrefix, Func<HttpRequestMessage, HttpResponseMessage> answer) => _always[pathPrefix] = answer;

        public int Count(string path)
        {
            lock (_seen)
            {
                return _seen.Count(s => s.Path == path);
            }
        }

        public IEnumerable<string> Bodies(string path)
        {
            lock (_seen)
            {
                return [.. _seen.Where(s => s.Path == path).Select(s => s.Body!)];
            }
        }

        public async Task WaitForCountAsync(string path, int count)
        {
            while (Count(path) < count)
            {
                await Task.Delay(2);
            }
        }

        protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            var path = request.RequestUri!.AbsolutePath;
            var body = request.Content is null ? null : await request.Content.ReadAsStringAsync(cancellationToken);
            lock (_seen)
            {
                _seen.Add((path, body));
            }

            if (path == "/api/version")
            {
                return Status(HttpStatusCode.OK, """{"version":"4","ray_version":"2.51.0","ray_commit":"abc"}""");
            }

            Func<HttpRequestMessage, CancellationToken, Task<HttpResponseMessage>>? next = null;
            lock (_scripts)
            {
                if (_scripts.TryGetValue(path, out var queue) && queue.Count > 0)
                {
                    next = queue.Dequeue();
                }
            }

            if (next is not null)
            {
                return await next(request, cancellationToken);
            }

            foreach (var (prefix, answer) in _always)
            {
                if (path.StartsWith(prefix, StringComparison.Ordinal))
                {
                    return answer(request);
                }
            }

            return Status(HttpStatusCode.NotFound, "no script");
        }
    }
}
