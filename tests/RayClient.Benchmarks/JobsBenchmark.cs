using System.Diagnostics;
using System.Globalization;
using System.Net.WebSockets;
using System.Text;
using System.Text.Json.Nodes;
using RayClient.Server;

namespace RayClient.Benchmarks;

/// <summary>Issue 9's measures: submit→SUCCEEDED latency of a trivial job, and log tail latency, over real HTTP.</summary>
internal static class JobsBenchmark
{
    public static async Task MeasureAsync(LocalRayServer server, bool quick, List<(string Name, double Value, string Unit, double? Ratio)> rows, double baseline)
    {
        using var http = new HttpClient { BaseAddress = new Uri(server.DashboardAddress + "/") };
        http.DefaultRequestHeaders.UserAgent.ParseAdd("RayClient.Benchmarks/1.0");

        // Submit a trivial job and follow its logs until the server closes the tail (the job is then terminal).
        var runs = quick ? 5 : 15;
        var latencies = new List<double>();
        for (var r = -2; r < runs; r++)
        {
            var sw = Stopwatch.StartNew();
            var id = await SubmitAsync(http, "true");
            await foreach (var _ in TailAsync(server, id))
            {
            }

            var status = (string?)JsonNode.Parse(await http.GetStringAsync($"api/jobs/{id}"))!["status"];
            sw.Stop();
            if (status != "SUCCEEDED")
            {
                throw new InvalidOperationException($"trivial job ended {status}");
            }

            if (r >= 0)
            {
                latencies.Add(sw.Elapsed.TotalSeconds);
            }

            await http.DeleteAsync($"api/jobs/{id}");
        }

        var submitMedian = Median(latencies);
        rows.Add(("job submit → SUCCEEDED (trivial job, median)", submitMedian * 1e3, "ms", submitMedian / baseline));

        // Log tail latency: the job prints its clock every 50 ms; the follower compares with its own.
        var lines = quick ? 20 : 60;
        var tail = await SubmitAsync(http, $"for i in $(seq 1 {lines}); do date +%s%N; sleep 0.05; done");
        var delays = new List<double>();
        var pending = new StringBuilder();
        await foreach (var chunk in TailAsync(server, tail))
        {
            var now = DateTimeOffset.UtcNow;
            pending.Append(chunk);
            var text = pending.ToString();
            var end = text.LastIndexOf('\n');
            if (end < 0)
            {
                continue;
            }

            foreach (var line in text[..end].Split('\n'))
            {
                if (line.Length >= 19 && long.TryParse(line, NumberStyles.None, CultureInfo.InvariantCulture, out var ns))
                {
                    delays.Add((now - DateTimeOffset.UnixEpoch.AddTicks(ns / 100)).TotalSeconds);
                }
            }

            pending.Clear().Append(text[(end + 1)..]);
        }

        var tailMedian = Median(delays);
        rows.Add(("job log tail latency (line written → received)", tailMedian * 1e3, "ms", tailMedian / baseline));
    }

    private static async Task<string> SubmitAsync(HttpClient http, string entrypoint)
    {
        using var content = new StringContent(new JsonObject { ["entrypoint"] = entrypoint }.ToJsonString(), Encoding.UTF8, "application/json");
        using var response = await http.PostAsync("api/jobs/", content);
        response.EnsureSuccessStatusCode();
        return (string)JsonNode.Parse(await response.Content.ReadAsStringAsync())!["submission_id"]!;
    }

    private static async IAsyncEnumerable<string> TailAsync(LocalRayServer server, string id)
    {
        using var socket = new ClientWebSocket();
        socket.Options.SetRequestHeader("User-Agent", "RayClient.Benchmarks/1.0");
        await socket.ConnectAsync(new Uri($"{server.DashboardAddress.Replace("http://", "ws://", StringComparison.Ordinal)}/api/jobs/{id}/logs/tail"), CancellationToken.None);
        var buffer = new byte[64 * 1024];
        using var message = new MemoryStream();
        while (true)
        {
            var result = await socket.ReceiveAsync(buffer, CancellationToken.None);
            if (result.MessageType == WebSocketMessageType.Close)
            {
                yield break;
            }

            message.Write(buffer, 0, result.Count);
            if (result.EndOfMessage)
            {
                yield return Encoding.UTF8.GetString(message.ToArray());
                message.SetLength(0);
            }
        }
    }

    private static double Median(List<double> values)
    {
        values.Sort();
        return values[values.Count / 2];
    }
}
