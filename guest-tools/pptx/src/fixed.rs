//! The parts every presentation has in the same form: the slide master
//! with its text styles, the two layouts (Title Slide; Title and Content),
//! the theme, and the presentation, view and table-style properties.

pub const NS: &str = "xmlns:a=\"http://schemas.openxmlformats.org/drawingml/2006/main\" \
xmlns:r=\"http://schemas.openxmlformats.org/officeDocument/2006/relationships\" \
xmlns:p=\"http://schemas.openxmlformats.org/presentationml/2006/main\"";

pub const GROUP: &str = "<p:nvGrpSpPr><p:cNvPr id=\"1\" name=\"\"/><p:cNvGrpSpPr/><p:nvPr/></p:nvGrpSpPr>\
<p:grpSpPr><a:xfrm><a:off x=\"0\" y=\"0\"/><a:ext cx=\"0\" cy=\"0\"/><a:chOff x=\"0\" y=\"0\"/><a:chExt cx=\"0\" cy=\"0\"/></a:xfrm></p:grpSpPr>";

fn placeholder(id: u32, name: &str, ph: &str, (x, y, cx, cy): (i64, i64, i64, i64), body: &str, lst: &str) -> String {
    format!(
        "<p:sp><p:nvSpPr><p:cNvPr id=\"{id}\" name=\"{name}\"/><p:cNvSpPr><a:spLocks noGrp=\"1\"/></p:cNvSpPr>\
         <p:nvPr>{ph}</p:nvPr></p:nvSpPr><p:spPr><a:xfrm><a:off x=\"{x}\" y=\"{y}\"/><a:ext cx=\"{cx}\" cy=\"{cy}\"/></a:xfrm>\
         <a:prstGeom prst=\"rect\"><a:avLst/></a:prstGeom></p:spPr><p:txBody>{body}<a:lstStyle>{lst}</a:lstStyle>\
         <a:p><a:endParaRPr lang=\"en-US\"/></a:p></p:txBody></p:sp>"
    )
}

/// Where the title of a content slide sits; the writer lays content out below it.
pub const TITLE_BOX: (i64, i64, i64, i64) = (609_600, 274_638, 10_972_800, 1_143_000);
const BODY_BOX: (i64, i64, i64, i64) = (609_600, 1_600_200, 10_972_800, 4_525_963);

fn text_style(sz: u32, bullets: bool) -> String {
    let (mar, bu) = if bullets {
        (
            "marL=\"342900\" indent=\"-342900\"",
            "<a:buFont typeface=\"Arial\"/><a:buChar char=\"•\"/>",
        )
    } else {
        ("marL=\"0\" indent=\"0\"", "<a:buNone/>")
    };
    format!(
        "<a:lvl1pPr {mar} algn=\"l\" defTabSz=\"914400\" rtl=\"0\" eaLnBrk=\"1\" latinLnBrk=\"0\" hangingPunct=\"1\">\
         <a:spcBef><a:spcPts val=\"600\"/></a:spcBef>{bu}<a:defRPr sz=\"{sz}\" kern=\"1200\"><a:solidFill><a:schemeClr val=\"tx1\"/></a:solidFill>\
         <a:latin typeface=\"+mn-lt\"/><a:ea typeface=\"+mn-ea\"/><a:cs typeface=\"+mn-cs\"/></a:defRPr></a:lvl1pPr>"
    )
}

pub fn master() -> String {
    format!(
        "{decl}<p:sldMaster {NS}><p:cSld><p:bg><p:bgRef idx=\"1001\"><a:schemeClr val=\"bg1\"/></p:bgRef></p:bg><p:spTree>{GROUP}{title}{body}</p:spTree></p:cSld>\
         <p:clrMap bg1=\"lt1\" tx1=\"dk1\" bg2=\"lt2\" tx2=\"dk2\" accent1=\"accent1\" accent2=\"accent2\" accent3=\"accent3\" \
         accent4=\"accent4\" accent5=\"accent5\" accent6=\"accent6\" hlink=\"hlink\" folHlink=\"folHlink\"/>\
         <p:sldLayoutIdLst><p:sldLayoutId id=\"2147483649\" r:id=\"rId1\"/><p:sldLayoutId id=\"2147483650\" r:id=\"rId2\"/></p:sldLayoutIdLst>\
         <p:txStyles><p:titleStyle><a:lvl1pPr algn=\"l\" defTabSz=\"914400\" rtl=\"0\" eaLnBrk=\"1\" latinLnBrk=\"0\" hangingPunct=\"1\">\
         <a:lnSpc><a:spcPct val=\"90000\"/></a:lnSpc><a:spcBef><a:spcPct val=\"0\"/></a:spcBef><a:buNone/>\
         <a:defRPr sz=\"3600\" b=\"1\" kern=\"1200\"><a:solidFill><a:schemeClr val=\"tx2\"/></a:solidFill>\
         <a:latin typeface=\"+mj-lt\"/><a:ea typeface=\"+mj-ea\"/><a:cs typeface=\"+mj-cs\"/></a:defRPr></a:lvl1pPr></p:titleStyle>\
         <p:bodyStyle>{bodystyle}</p:bodyStyle><p:otherStyle><a:defPPr><a:defRPr lang=\"en-US\"/></a:defPPr>{other}</p:otherStyle></p:txStyles></p:sldMaster>",
        decl = deskhand_ooxml::XML_DECL,
        title = placeholder(
            2,
            "Title Placeholder 1",
            "<p:ph type=\"title\"/>",
            TITLE_BOX,
            "<a:bodyPr vert=\"horz\" lIns=\"91440\" tIns=\"45720\" rIns=\"91440\" bIns=\"45720\" rtlCol=\"0\" anchor=\"ctr\"><a:normAutofit/></a:bodyPr>",
            ""
        ),
        body = placeholder(
            3,
            "Text Placeholder 2",
            "<p:ph type=\"body\" idx=\"1\"/>",
            BODY_BOX,
            "<a:bodyPr vert=\"horz\" lIns=\"91440\" tIns=\"45720\" rIns=\"91440\" bIns=\"45720\" rtlCol=\"0\"><a:normAutofit/></a:bodyPr>",
            ""
        ),
        bodystyle = text_style(2400, true),
        other = text_style(1800, false),
    )
}

pub fn layout_title() -> String {
    format!(
        "{decl}<p:sldLayout {NS} type=\"title\" preserve=\"1\"><p:cSld name=\"Title Slide\"><p:spTree>{GROUP}{title}{sub}</p:spTree></p:cSld>\
         <p:clrMapOvr><a:masterClrMapping/></p:clrMapOvr></p:sldLayout>",
        decl = deskhand_ooxml::XML_DECL,
        title = placeholder(
            2,
            "Title 1",
            "<p:ph type=\"ctrTitle\"/>",
            (1_524_000, 1_122_363, 9_144_000, 2_387_600),
            "<a:bodyPr anchor=\"b\"><a:normAutofit/></a:bodyPr>",
            "<a:lvl1pPr algn=\"ctr\"><a:defRPr sz=\"4800\"/></a:lvl1pPr>"
        ),
        sub = placeholder(
            3,
            "Subtitle 2",
            "<p:ph type=\"subTitle\" idx=\"1\"/>",
            (1_524_000, 3_602_038, 9_144_000, 1_655_762),
            "<a:bodyPr><a:normAutofit/></a:bodyPr>",
            "<a:lvl1pPr marL=\"0\" indent=\"0\" algn=\"ctr\"><a:buNone/><a:defRPr sz=\"2400\"/></a:lvl1pPr>"
        ),
    )
}

pub fn layout_content() -> String {
    format!(
        "{decl}<p:sldLayout {NS} type=\"obj\" preserve=\"1\"><p:cSld name=\"Title and Content\"><p:spTree>{GROUP}{title}{body}</p:spTree></p:cSld>\
         <p:clrMapOvr><a:masterClrMapping/></p:clrMapOvr></p:sldLayout>",
        decl = deskhand_ooxml::XML_DECL,
        title = placeholder(2, "Title 1", "<p:ph type=\"title\"/>", TITLE_BOX, "<a:bodyPr/>", ""),
        body = placeholder(
            3,
            "Content Placeholder 2",
            "<p:ph idx=\"1\"/>",
            BODY_BOX,
            "<a:bodyPr/>",
            ""
        ),
    )
}

pub fn theme() -> String {
    let fill = "<a:solidFill><a:schemeClr val=\"phClr\"/></a:solidFill>";
    let ln = |w: u32| {
        format!("<a:ln w=\"{w}\" cap=\"flat\" cmpd=\"sng\" algn=\"ctr\">{fill}<a:prstDash val=\"solid\"/></a:ln>")
    };
    let clr = |name: &str, v: &str| format!("<a:{name}><a:srgbClr val=\"{v}\"/></a:{name}>");
    format!(
        "{decl}<a:theme xmlns:a=\"http://schemas.openxmlformats.org/drawingml/2006/main\" name=\"deskhand\"><a:themeElements>\
         <a:clrScheme name=\"deskhand\"><a:dk1><a:sysClr val=\"windowText\" lastClr=\"000000\"/></a:dk1>\
         <a:lt1><a:sysClr val=\"window\" lastClr=\"FFFFFF\"/></a:lt1>{dk2}{lt2}{a1}{a2}{a3}{a4}{a5}{a6}{hl}{fhl}</a:clrScheme>\
         <a:fontScheme name=\"deskhand\"><a:majorFont><a:latin typeface=\"Calibri Light\"/><a:ea typeface=\"\"/><a:cs typeface=\"\"/></a:majorFont>\
         <a:minorFont><a:latin typeface=\"Calibri\"/><a:ea typeface=\"\"/><a:cs typeface=\"\"/></a:minorFont></a:fontScheme>\
         <a:fmtScheme name=\"deskhand\"><a:fillStyleLst>{fill}{fill}{fill}</a:fillStyleLst>\
         <a:lnStyleLst>{l1}{l2}{l3}</a:lnStyleLst>\
         <a:effectStyleLst><a:effectStyle><a:effectLst/></a:effectStyle><a:effectStyle><a:effectLst/></a:effectStyle>\
         <a:effectStyle><a:effectLst/></a:effectStyle></a:effectStyleLst>\
         <a:bgFillStyleLst>{fill}{fill}{fill}</a:bgFillStyleLst></a:fmtScheme></a:themeElements>\
         <a:objectDefaults/><a:extraClrSchemeLst/></a:theme>",
        decl = deskhand_ooxml::XML_DECL,
        dk2 = clr("dk2", "1F3864"),
        lt2 = clr("lt2", "E7E6E6"),
        a1 = clr("accent1", "4472C4"),
        a2 = clr("accent2", "ED7D31"),
        a3 = clr("accent3", "A5A5A5"),
        a4 = clr("accent4", "FFC000"),
        a5 = clr("accent5", "5B9BD5"),
        a6 = clr("accent6", "70AD47"),
        hl = clr("hlink", "0563C1"),
        fhl = clr("folHlink", "954F72"),
        l1 = ln(6350),
        l2 = ln(12700),
        l3 = ln(19050),
    )
}

pub fn pres_props() -> String {
    format!("{}<p:presentationPr {NS}/>", deskhand_ooxml::XML_DECL)
}

pub fn view_props() -> String {
    format!(
        "{}<p:viewPr {NS}><p:gridSpacing cx=\"76200\" cy=\"76200\"/></p:viewPr>",
        deskhand_ooxml::XML_DECL
    )
}

pub fn table_styles() -> String {
    format!(
        "{}<a:tblStyleLst xmlns:a=\"http://schemas.openxmlformats.org/drawingml/2006/main\" \
         def=\"{{5C22544A-7EE6-4342-B048-85BDC9FD1C3A}}\"/>",
        deskhand_ooxml::XML_DECL
    )
}
