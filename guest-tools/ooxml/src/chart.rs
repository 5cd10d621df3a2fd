//! A bar chart as a native DrawingML chart part (`c:chartSpace`): one
//! series of vertical bars with value labels. The data lives in the part's
//! caches (`c:strCache`, `c:numCache`); no workbook is embedded, so Word and
//! PowerPoint show the chart but open no data sheet to edit it, and
//! LibreOffice renders it from the same caches.

use crate::{XML_DECL, esc, num};

/// The chart part for `labels` and `values` (the same length, checked by
/// the document model), titled when `title` is given.
pub fn bar_chart_xml(title: Option<&str>, labels: &[String], values: &[f64]) -> String {
    let n = labels.len().min(values.len());
    let series_name = title.unwrap_or("Values");
    let mut x = String::from(XML_DECL);
    x.push_str(
        "<c:chartSpace xmlns:c=\"http://schemas.openxmlformats.org/drawingml/2006/chart\" \
         xmlns:a=\"http://schemas.openxmlformats.org/drawingml/2006/main\" \
         xmlns:r=\"http://schemas.openxmlformats.org/officeDocument/2006/relationships\">\
         <c:lang val=\"en-US\"/><c:roundedCorners val=\"0\"/><c:chart>",
    );
    match title {
        Some(t) => x.push_str(&format!(
            "<c:title><c:tx><c:rich><a:bodyPr/><a:lstStyle/><a:p><a:pPr><a:defRPr sz=\"1400\" b=\"1\"/></a:pPr>\
             <a:r><a:rPr lang=\"en-US\" sz=\"1400\" b=\"1\"/><a:t>{}</a:t></a:r></a:p></c:rich></c:tx>\
             <c:overlay val=\"0\"/></c:title><c:autoTitleDeleted val=\"0\"/>",
            esc(t)
        )),
        None => x.push_str("<c:autoTitleDeleted val=\"1\"/>"),
    }
    x.push_str(
        "<c:plotArea><c:layout/><c:barChart><c:barDir val=\"col\"/><c:grouping val=\"clustered\"/>\
         <c:varyColors val=\"0\"/><c:ser><c:idx val=\"0\"/><c:order val=\"0\"/>",
    );
    x.push_str(&format!(
        "<c:tx><c:strRef><c:f>Sheet1!$B$1</c:f><c:strCache><c:ptCount val=\"1\"/><c:pt idx=\"0\"><c:v>{}</c:v></c:pt>\
         </c:strCache></c:strRef></c:tx>",
        esc(series_name)
    ));
    x.push_str(
        "<c:spPr><a:solidFill><a:srgbClr val=\"4472C4\"/></a:solidFill></c:spPr><c:invertIfNegative val=\"0\"/>\
         <c:dLbls><c:spPr><a:noFill/><a:ln><a:noFill/></a:ln></c:spPr><c:showLegendKey val=\"0\"/><c:showVal val=\"1\"/>\
         <c:showCatName val=\"0\"/><c:showSerName val=\"0\"/><c:showPercent val=\"0\"/><c:showBubbleSize val=\"0\"/></c:dLbls>",
    );
    let last = n + 1;
    x.push_str(&format!(
        "<c:cat><c:strRef><c:f>Sheet1!$A$2:$A${last}</c:f><c:strCache><c:ptCount val=\"{n}\"/>"
    ));
    for (i, label) in labels.iter().take(n).enumerate() {
        x.push_str(&format!("<c:pt idx=\"{i}\"><c:v>{}</c:v></c:pt>", esc(label)));
    }
    x.push_str(&format!(
        "</c:strCache></c:strRef></c:cat><c:val><c:numRef><c:f>Sheet1!$B$2:$B${last}</c:f><c:numCache>\
         <c:formatCode>General</c:formatCode><c:ptCount val=\"{n}\"/>"
    ));
    for (i, v) in values.iter().take(n).enumerate() {
        x.push_str(&format!("<c:pt idx=\"{i}\"><c:v>{}</c:v></c:pt>", num(*v)));
    }
    x.push_str(
        "</c:numCache></c:numRef></c:val></c:ser><c:gapWidth val=\"80\"/><c:overlap val=\"0\"/>\
         <c:axId val=\"500000001\"/><c:axId val=\"500000002\"/></c:barChart>\
         <c:catAx><c:axId val=\"500000001\"/><c:scaling><c:orientation val=\"minMax\"/></c:scaling><c:delete val=\"0\"/>\
         <c:axPos val=\"b\"/><c:numFmt formatCode=\"General\" sourceLinked=\"0\"/><c:majorTickMark val=\"out\"/>\
         <c:minorTickMark val=\"none\"/><c:tickLblPos val=\"nextTo\"/><c:crossAx val=\"500000002\"/>\
         <c:crosses val=\"autoZero\"/><c:auto val=\"1\"/><c:lblAlgn val=\"ctr\"/><c:lblOffset val=\"100\"/>\
         <c:noMultiLvlLbl val=\"0\"/></c:catAx>\
         <c:valAx><c:axId val=\"500000002\"/><c:scaling><c:orientation val=\"minMax\"/></c:scaling><c:delete val=\"0\"/>\
         <c:axPos val=\"l\"/><c:majorGridlines><c:spPr><a:ln w=\"6350\"><a:solidFill><a:srgbClr val=\"D9D9D9\"/></a:solidFill></a:ln></c:spPr></c:majorGridlines>\
         <c:numFmt formatCode=\"General\" sourceLinked=\"0\"/><c:majorTickMark val=\"out\"/><c:minorTickMark val=\"none\"/>\
         <c:tickLblPos val=\"nextTo\"/><c:crossAx val=\"500000001\"/><c:crosses val=\"autoZero\"/>\
         <c:crossBetween val=\"between\"/></c:valAx></c:plotArea><c:plotVisOnly val=\"1\"/>\
         <c:dispBlanksAs val=\"gap\"/></c:chart>\
         <c:txPr><a:bodyPr/><a:lstStyle/><a:p><a:pPr><a:defRPr sz=\"1000\"/></a:pPr><a:endParaRPr lang=\"en-US\"/></a:p></c:txPr>\
         </c:chartSpace>",
    );
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chart_part_is_well_formed_and_holds_the_data() {
        let x = bar_chart_xml(Some("Spend & save"), &["Food".into(), "中文".into()], &[12.5, 3.0]);
        let mut reader = quick_xml::Reader::from_str(&x);
        loop {
            match reader.read_event() {
                Ok(quick_xml::events::Event::Eof) => break,
                Ok(_) => {}
                Err(e) => panic!("{e}: {x}"),
            }
        }
        assert!(x.contains("<c:v>中文</c:v>") && x.contains("<c:v>12.5</c:v>") && x.contains("Spend &amp; save"));
    }
}
