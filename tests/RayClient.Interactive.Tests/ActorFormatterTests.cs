using System.Text.RegularExpressions;
using RayClient.Interactive.Tests.Infrastructure;

namespace RayClient.Interactive.Tests;

/// <summary>How an actor handle shows in a notebook, through the packed extension's formatter.</summary>
[Collection(PackedFeedCollection.Name)]
public sealed partial class ActorFormatterTests(PackedFeed feed)
{
    [Fact]
    public async Task ActorHandle_Formatted_NamedShowsNameAndNamespace_UnnamedAsBefore()
    {
        using var kernel = new NotebookKernel();
        await kernel.RunOkAsync($"#i \"nuget: {feed.Feed}\"");
        await kernel.RunOkAsync($"#r \"nuget: RayClient.Interactive, {feed.Version}\"");
        await kernel.RunOkAsync("#!ray connect");
        var name = $"fmt-{Guid.NewGuid():N}";

        // Ids are awaited first, so that the display shows them rather than "pending" on a slow machine.
        var named = await kernel.RunOkAsync(
            $"var named = ray.Actor(PyActorClass.Of(\"collections\", \"Counter\")).SetName(\"{name}\").SetNamespace(\"fmt-ns\").Remote();\nawait named.GetIdAsync();\nnamed");
        Assert.True(ActorLine().Match(named.PlainText) is { Success: true } m && m.Groups["name"].Value == name && m.Groups["ns"].Value == "fmt-ns", named.Describe());
        Assert.Contains(named.Html, html => html.Contains($"name <code>{name}</code>", StringComparison.Ordinal) && html.Contains("namespace <code>fmt-ns</code>", StringComparison.Ordinal));

        var found = await kernel.RunOkAsync($"await ray.GetActorAsync(\"{name}\", \"fmt-ns\")");
        Assert.True(ActorLine().Match(found.PlainText) is { Success: true } f && f.Groups["name"].Value == name && f.Groups["ns"].Value == "fmt-ns", found.Describe());

        var unnamed = await kernel.RunOkAsync("var unnamed = ray.Actor(PyActorClass.Of(\"collections\", \"Counter\")).Remote();\nawait unnamed.GetIdAsync();\nunnamed");
        Assert.True(UnnamedLine().IsMatch(unnamed.PlainText), unnamed.Describe());
        Assert.DoesNotContain(unnamed.Html, html => html.Contains(" name <code>", StringComparison.Ordinal));

        await kernel.RunOkAsync("#!ray disconnect");
    }

    [GeneratedRegex(@"Actor \S+ name (?<name>\S+) id [0-9a-f]{32} namespace (?<ns>\S+) created")]
    private static partial Regex ActorLine();

    [GeneratedRegex(@"Actor Counter id [0-9a-f]{32} namespace \(anonymous\) created")]
    private static partial Regex UnnamedLine();
}
