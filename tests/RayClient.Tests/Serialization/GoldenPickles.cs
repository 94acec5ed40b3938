namespace RayClient.Tests.Serialization;

/// <summary>Pickles produced by CPython 3.11.7's <c>pickle</c> module, checked in as hex (regenerate with the expressions in the comments).</summary>
internal static class GoldenPickles
{
    /// <summary><c>pickle.dumps({'name': 'ray', 'ids': [1, 2**40], 'pair': ('a', b'\x00'), 'tags': {'x'}}, protocol=5)</c>: FRAME, MEMOIZE, LONG1, EMPTY_SET/ADDITEMS.</summary>
    public const string Protocol5Dict =
        "80059546000000000000007d94288c046e616d65948c03726179948c03696473945d94284b018a06000000000001658c0470616972948c016194" +
        "4301009486948c0474616773948f94288c01789490752e";

    /// <summary><c>x = ['a']; pickle.dumps([x, x, b'x', 3.25], protocol=2)</c>: BINPUT/BINGET sharing, bytes via <c>_codecs.encode</c>.</summary>
    public const string Protocol2Shared =
        "80025d7100285d71015801000000617102616801635f636f646563730a656e636f64650a7103580100000078710458060000006c6174696e3171" +
        "0586710652710747400a000000000000652e";

    /// <summary><c>pickle.dumps({'k': [1, -2.5, 'é\n', True, None, 2**70]}, protocol=0)</c>: text opcodes, raw-unicode-escape, PUT/GET.</summary>
    public const string Protocol0Text =
        "286470300a566b0a70310a286c70320a49310a61462d322e350a6156e95c75303030610a70330a614930310a614e614c31313830353931363230" +
        "3731373431313330333432344c0a61732e";

    /// <summary>Python 2.7.18: <c>pickle.dumps([b'a\n\x00\xff\'"', u'\u00e9\u65e5', 2**70, 5, 1.5, (True, None)], 0)</c>: STRING with escapes, LONG text.</summary>
    public const string Python2Protocol0 =
        "286c70300a5327615c6e5c7830305c7866665c2722270a70310a6156e95c75363565350a70320a614c31313830353931363230373137343131" +
        "3330333432344c0a6149350a6146312e350a61284930310a4e7470330a612e";

    /// <summary>Python 2.7.18: the same list with protocol 2: SHORT_BINSTRING, BINUNICODE, LONG1, NEWTRUE.</summary>
    public const string Python2Protocol2 =
        "80025d7100285506610a00ff272271015805000000c3a9e697a571028a090000000000000000404b05473ff8000000000000884e867103652e";
}
