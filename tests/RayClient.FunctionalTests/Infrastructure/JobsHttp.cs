using System.Net;
using System.Net.Http.Headers;
using System.Net.WebSockets;
using System.Text;
using System.Text.Json.Nodes;

namespace RayClient.FunctionalTests.Infrastructure;

/// <summary>
/// A tiny Ray Jobs REST client for the server's tests: raw HttpClient and ClientWebSocket calls
/// with Ray's paths and JSON, so the tests check the wire format itself (the library's
/// JobSubmissionClient is tested on its own).
/// </summary>
public sealed class JobsHttp : IDisposable
{
    private readonly HttpClient _http;

    public JobsHttp(string baseAddress)
    {
        BaseAddress = baseAddress.TrimEnd('/');
        _http = new HttpClient { BaseAddress = new Uri(BaseAddress + "/"), Timeout = TimeSpan.FromSeconds(60) };
        _http.DefaultRequestHeaders.UserAgent.Add(new ProductInfoHeaderValue("RayClient.FunctionalTests", "1.0"));
    }

    public string BaseAddress { get; }

    public async Task<(HttpStatusCode Status, string Body)> SendAsync(HttpMethod method, string path, JsonNode? json = null, string? rawBody = null)
    {
        using var request = new HttpRequestMessage(method, path);
        if (json is not null || rawBody is not null)
        {
            request.Content = new StringContent(rawBody ?? json!.ToJsonString(), Encoding.UTF8, "application/json");
        }

        using var response = await _http.SendAsync(request);
        return (response.StatusCode, await response.Content.ReadAsStringAsync());
    }

    public async Task<JsonNode> GetJsonAsync(string path)
    {
        var (status, body) = await SendAsync(HttpMethod.Get, path);
        Assert.True(status == HttpStatusCode.OK, $"GET {path}: {(int)status} {body}");
        return JsonNode.Parse(body)!;
    }

    /// <summary>Submits a job; returns its submission id.</summary>
    public async Task<string> SubmitAsync(JsonObject request)
    {
        var (status, body) = await SendAsync(HttpMethod.Post, "api/jobs/", request);
        Assert.True(status == HttpStatusCode.OK, $"submit: {(int)status} {body}");
        var response = JsonNode.Parse(body)!;
        Assert.Equal((string?)response["job_id"], (string?)response["submission_id"]);
        return (string)response["submission_id"]!;
    }

    public Task<JsonNode> GetJobAsync(string id) => GetJsonAsync($"api/jobs/{Uri.EscapeDataString(id)}");

    public async Task<string> GetLogsAsync(string id) => (string)(await GetJsonAsync($"api/jobs/{Uri.EscapeDataString(id)}/logs"))["logs"]!;

    /// <summary>Polls the job until its status is one of <paramref name="statuses"/> (bounded).</summary>
    public async Task<JsonNode> WaitForStatusAsync(string id, params string[] statuses)
    {
        JsonNode job = null!;
        await Eventually.TrueAsync(
            async () =>
            {
                job = await GetJobAsync(id);
                return statuses.Contains((string?)job["status"]);
            },
            $"job {id} is {string.Join("/", statuses)}",
            TimeSpan.FromSeconds(60));
        return job;
    }

    /// <summary>Follows the logs websocket until the server closes it; returns the messages and the close status.</summary>
    public async Task<(List<string> Messages, WebSocketCloseStatus? Close)> TailAsync(string id, TimeSpan? timeout = null)
    {
        using var socket = new ClientWebSocket();
        socket.Options.SetRequestHeader("User-Agent", "RayClient.FunctionalTests/1.0");
        using var cts = new CancellationTokenSource(timeout ?? TimeSpan.FromSeconds(60));
        var uri = new Uri(BaseAddress.Replace("http://", "ws://", StringComparison.Ordinal) + $"/api/jobs/{Uri.EscapeDataString(id)}/logs/tail");
        await socket.ConnectAsync(uri, cts.Token);
        var messages = new List<string>();
        var buffer = new byte[64 * 1024];
        using var message = new MemoryStream();
        while (true)
        {
            var result = await socket.ReceiveAsync(buffer, cts.Token);
            if (result.MessageType == WebSocketMessageType.Close)
            {
                await socket.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, null, cts.Token);
                return (messages, result.CloseStatus);
            }

            message.Write(buffer, 0, result.Count);
            if (result.EndOfMessage)
            {
                messages.Add(Encoding.UTF8.GetString(message.ToArray()));
                message.SetLength(0);
            }
        }
    }

    public void Dispose() => _http.Dispose();
}
